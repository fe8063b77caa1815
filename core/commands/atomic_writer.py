"""Write a mount's files into a directory the way the driver (and kubelet) does.

Files go into a fresh timestamped directory `..<timestamp>`; a `..data` symlink is then swapped
atomically to point at it, and each top-level entry is a symlink through `..data`. A reader never
sees a half-written set, and a new set replaces the old one in one rename. If every file is
unchanged, nothing is written (as the driver does). Used by the demo and `mount` commands.

The directory is usually a user's own, so the writer only ever touches what it wrote itself:
every path is checked with the driver's rules first (a hostile provider answering `../x` or
`/etc/x` writes nothing), a non-empty directory without this writer's `..data` is refused unless
`force`, an entry it did not create (a file, a directory, a symlink of the user's) is never
replaced or removed, and a `..data` link it did not create is never followed.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ack_secrets_provider.core.mount.paths import driver_path_problem

DATA_LINK = "..data"
TMP_LINK = "..data_tmp"
#: the data directories this writer creates: `..2026_11_30_10_15_00.123456789`
_STAMP = re.compile(r"\.\.\d{4}_\d{2}_\d{2}_\d{2}_\d{2}_\d{2}\.\d{9}")


class UnsafeTarget(Exception):
    """Writing would touch something this writer does not own; the message says what and why."""


@dataclass(frozen=True)
class FileToWrite:
    path: str
    mode: int
    contents: bytes


def _check_paths(files: Sequence[FileToWrite]) -> None:
    """Refuse what the driver refuses: bad paths, a path given twice, a file used as a dir."""
    seen: set[str] = set()
    for item in files:
        problem = driver_path_problem(item.path)
        if problem is not None:
            raise UnsafeTarget(f"the provider answered the file {item.path[:100]!r}, which the "
                               f"driver would refuse ({problem}); nothing was written")
        if item.path in seen:
            raise UnsafeTarget(f"the provider answered the file {item.path!r} twice; nothing "
                               "was written")
        seen.add(item.path)
    for path in seen:
        parts = path.split("/")
        for depth in range(1, len(parts)):
            if "/".join(parts[:depth]) in seen:
                raise UnsafeTarget(f"the provider answered {'/'.join(parts[:depth])!r} both as "
                                   "a file and as a directory; nothing was written")


def _ours(entry: Path) -> bool:
    """A top-level symlink this writer made: `<name>` → `..data/<name>`."""
    return entry.is_symlink() and os.readlink(entry) == f"{DATA_LINK}/{entry.name}"


def managed_data(root: Path) -> Path | None:
    """The data directory of this writer's `..data` link in `root`, or None without one.

    Raises UnsafeTarget when `..data` exists but is not a link to a data directory this writer
    creates (a real directory beside it, named like a timestamp): it is then never followed.
    """
    link = root / DATA_LINK
    if not link.is_symlink():
        if link.exists():
            raise UnsafeTarget(f"{link} exists and is not a link this tool wrote; remove it or "
                               "choose another --target")
        return None
    name = os.readlink(link)
    data = root / name
    if not _STAMP.fullmatch(name) or data.is_symlink() or not data.is_dir():
        raise UnsafeTarget(f"{link} points to {name!r}, not to a data directory this tool "
                           "wrote; it is left alone: remove it or choose another --target")
    return data


def check_target(target: str | os.PathLike[str], *, force: bool = False) -> None:
    """Refuse a non-empty directory this writer does not manage (unless `force`)."""
    root = Path(target)
    if not root.exists():
        return
    if not root.is_dir():
        raise UnsafeTarget(f"{root} is not a directory; choose another --target")
    if managed_data(root) is None and not force and any(root.iterdir()):
        raise UnsafeTarget(f"{root} is not empty and holds no files written by this tool; "
                           "choose an empty or new directory, or pass --force to add the files "
                           "beside the existing ones (nothing of yours is replaced or removed)")


def _current(data: Path | None) -> dict[str, tuple[int, bytes]]:
    """The files of a data directory this writer made (regular files only, links not followed)."""
    found: dict[str, tuple[int, bytes]] = {}
    if data is None:
        return found
    for folder, _dirs, names in os.walk(data):
        for name in names:
            path = Path(folder) / name
            info = path.lstat()
            if stat.S_ISREG(info.st_mode):
                found[str(path.relative_to(data))] = (info.st_mode & 0o777, path.read_bytes())
            else:
                found[str(path.relative_to(data))] = (-1, b"")  # never equal to a wanted file
    return found


def write_atomically(
    target: str | os.PathLike[str], files: Sequence[FileToWrite], *, force: bool = False
) -> bool:
    """Publish `files` under `target`; return False when nothing changed.

    Raises UnsafeTarget (before writing anything) when a path is one the driver would refuse or
    the target holds something this writer did not write where a file must go.
    """
    _check_paths(files)
    root = Path(target)
    check_target(root, force=force)
    root.mkdir(parents=True, exist_ok=True)
    old = managed_data(root)
    top_level = {item.path.split("/", 1)[0] for item in files}
    for name in sorted(top_level):
        entry = root / name
        if (entry.exists() or entry.is_symlink()) and not _ours(entry):
            raise UnsafeTarget(f"{entry} exists and was not written by this tool; it is left "
                               "alone: move it away or choose another --target")
    tmp_link = root / TMP_LINK
    if tmp_link.exists() and not tmp_link.is_symlink():
        raise UnsafeTarget(f"{tmp_link} exists and is not a link this tool wrote; remove it")
    wanted = {item.path: (item.mode, item.contents) for item in files}
    if old is not None and wanted == _current(old) and all(_ours(root / n) for n in top_level):
        return False
    stamp = time.strftime("..%Y_%m_%d_%H_%M_%S.", time.gmtime()) + f"{time.time_ns() % 10**9:09d}"
    staging = root / stamp
    staging.mkdir(mode=0o755)
    for item in files:
        path = staging / item.path
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(item.contents)
        os.chmod(path, item.mode)
    if tmp_link.is_symlink():
        tmp_link.unlink()
    os.symlink(stamp, tmp_link)
    os.replace(tmp_link, root / DATA_LINK)  # the atomic switch
    for name in top_level:
        if not (root / name).is_symlink():
            os.symlink(f"{DATA_LINK}/{name}", root / name)
    if old is not None:
        # only the links of the previous set, which this writer made, are taken away
        for name in set(os.listdir(old)) - top_level:
            if _ours(root / name):
                (root / name).unlink()
        shutil.rmtree(old)
    return True
