"""The driver-style atomic directory swap used by the demo and the mount command."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hostile_provider import file_tree

from ack_secrets_provider.core.commands.atomic_writer import (
    DATA_LINK,
    FileToWrite,
    UnsafeTarget,
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


# -- a user's directory: only what the writer wrote is ever touched ------------------------


def test_a_non_empty_directory_it_does_not_manage_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(UnsafeTarget, match="not empty.*--force"):
        write_atomically(tmp_path, [FileToWrite("a", 0o644, b"1")])
    assert file_tree(tmp_path) == {"notes.txt": "mine"}


def test_force_writes_beside_the_users_files_and_never_replaces_them(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "main.py").write_text("print()")
    (tmp_path / "elsewhere").symlink_to("/usr/share")
    before = file_tree(tmp_path)
    with pytest.raises(UnsafeTarget, match="src exists and was not written by this tool"):
        write_atomically(tmp_path, [FileToWrite("src", 0o644, b"secret")], force=True)
    assert file_tree(tmp_path) == before
    assert write_atomically(tmp_path, [FileToWrite("db", 0o644, b"1")], force=True)
    assert write_atomically(tmp_path, [FileToWrite("db2", 0o644, b"2")])  # now managed
    after = file_tree(tmp_path)
    assert {k: v for k, v in after.items() if k in before} == before
    assert (tmp_path / "db2").read_bytes() == b"2" and not (tmp_path / "db").exists()


@pytest.mark.parametrize("path", ["../x", "/tmp/x", "a/../../x", "..data/x", "a//b", ""])
def test_a_path_the_driver_refuses_writes_nothing(tmp_path: Path, path: str) -> None:
    target = tmp_path / "target"
    with pytest.raises(UnsafeTarget, match="driver would refuse"):
        write_atomically(target, [FileToWrite("ok", 0o644, b"1"), FileToWrite(path, 0o644, b"x")])
    assert file_tree(tmp_path) == {}


def test_a_file_that_is_also_a_directory_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(UnsafeTarget, match="both as a file and as a directory"):
        write_atomically(tmp_path, [FileToWrite("a", 0o644, b"1"), FileToWrite("a/b", 0o644, b"")])
    assert file_tree(tmp_path) == {}


def test_a_planted_data_link_is_never_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("precious")
    target = tmp_path / "target"
    target.mkdir()
    (target / DATA_LINK).symlink_to(outside)
    for force in (False, True):
        with pytest.raises(UnsafeTarget, match="not to a data directory this tool wrote"):
            write_atomically(target, [FileToWrite("keep", 0o644, b"x")], force=force)
    assert file_tree(outside) == {"keep": "precious"}
    # named like a data directory, but a link out of the target: still not followed
    (target / DATA_LINK).unlink()
    (target / "..2026_01_01_00_00_00.000000000").symlink_to(outside)
    (target / DATA_LINK).symlink_to("..2026_01_01_00_00_00.000000000")
    with pytest.raises(UnsafeTarget):
        write_atomically(target, [FileToWrite("keep", 0o644, b"x")], force=True)
    assert file_tree(outside) == {"keep": "precious"}
