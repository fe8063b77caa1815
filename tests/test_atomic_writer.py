"""The driver-style atomic directory swap used by the demo and the mount command."""

from __future__ import annotations

import os
from pathlib import Path

from ack_secrets_provider.core.commands.atomic_writer import (
    DATA_LINK,
    FileToWrite,
    write_atomically,
)


def test_files_are_published_through_the_data_link(tmp_path: Path) -> None:
    assert write_atomically(tmp_path, [FileToWrite("a", 0o440, b"1"),
                                       FileToWrite("dir/b", 0o644, b"2")])
    assert (tmp_path / "a").read_bytes() == b"1"
    assert (tmp_path / "dir" / "b").read_bytes() == b"2"
    assert os.readlink(tmp_path / "a") == f"{DATA_LINK}/a"
    assert (tmp_path / "a").stat().st_mode & 0o777 == 0o440


def test_unchanged_files_are_not_rewritten(tmp_path: Path) -> None:
    files = [FileToWrite("a", 0o644, b"1")]
    write_atomically(tmp_path, files)
    first = os.readlink(tmp_path / DATA_LINK)
    assert write_atomically(tmp_path, files) is False
    assert os.readlink(tmp_path / DATA_LINK) == first


def test_a_new_set_replaces_the_old_one_and_removes_stale_entries(tmp_path: Path) -> None:
    write_atomically(tmp_path, [FileToWrite("a", 0o644, b"1"), FileToWrite("old", 0o644, b"x")])
    first = tmp_path / os.readlink(tmp_path / DATA_LINK)
    assert write_atomically(tmp_path, [FileToWrite("a", 0o644, b"2")])
    assert (tmp_path / "a").read_bytes() == b"2"
    assert not (tmp_path / "old").exists()
    assert not first.exists()
    timestamped = [p for p in tmp_path.iterdir() if p.name.startswith("..") and p.is_dir()
                   and not p.is_symlink()]
    assert len(timestamped) == 1
