"""Write a mount's files into a directory the way the driver (and kubelet) does.

Files go into a fresh timestamped directory `..<timestamp>`; a `..data` symlink is then swapped
atomically to point at it, and each top-level entry is a symlink through `..data`. A reader never
sees a half-written set, and a new set replaces the old one in one rename. If every file is
unchanged, nothing is written (as the driver does). Used by the demo and `mount` commands.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

DATA_LINK = "..data"


@dataclass(frozen=True)
class FileToWrite:
    path: str
    mode: int
    contents: bytes


def _current(target: Path) -> dict[str, tuple[int, bytes]]:
    data = target / DATA_LINK
    if not data.is_symlink():
        return {}
    root = data.resolve()
    found = {}
    for path in root.rglob("*"):
        if path.is_file():
            found[str(path.relative_to(root))] = (path.stat().st_mode & 0o777, path.read_bytes())
    return found


def write_atomically(target: str | os.PathLike[str], files: Sequence[FileToWrite]) -> bool:
    """Publish `files` under `target`; return False when nothing changed."""
    root = Path(target)
    root.mkdir(parents=True, exist_ok=True)
    wanted = {item.path: (item.mode, item.contents) for item in files}
    if wanted == _current(root) and (root / DATA_LINK).exists():
        return False
    stamp = time.strftime("..%Y_%m_%d_%H_%M_%S.", time.gmtime()) + f"{time.time_ns() % 10**9:09d}"
    staging = root / stamp
    staging.mkdir(mode=0o755)
    for item in files:
        path = staging / item.path
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(item.contents)
        os.chmod(path, item.mode)
    old = (root / DATA_LINK).resolve() if (root / DATA_LINK).is_symlink() else None
    tmp_link = root / "..data_tmp"
    if tmp_link.is_symlink():
        tmp_link.unlink()
    os.symlink(stamp, tmp_link)
    os.replace(tmp_link, root / DATA_LINK)  # the atomic switch
    top_level = {item.path.split("/", 1)[0] for item in files}
    for name in top_level:
        link = root / name
        if not link.is_symlink():
            if link.exists():
                shutil.rmtree(link) if link.is_dir() else link.unlink()
            os.symlink(f"{DATA_LINK}/{name}", link)
    for entry in root.iterdir():
        if entry.is_symlink() and not entry.name.startswith("..") and entry.name not in top_level:
            entry.unlink()
    if old is not None and old.exists() and old != staging.resolve():
        shutil.rmtree(old)
    return True
