"""Which files this process opens for writing or creates during a block (an audit hook).

For the promises that a secret never reaches the disk: a pod token (docs/migration.md, defect
6), a fetched or cached value (docs/rotation-and-caching.md). The hook sees every thread of the
process, the provider's and the in-process emulator's alike.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND
_CREATES = ("tempfile.mkstemp", "tempfile.mkdtemp", "os.mkdir")
_watches: list[list[object]] = []
_lock = threading.Lock()
_installed = False


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if not _watches:
        return
    opens_for_writing = event == "open" and (
        any(c in str(args[1] or "") for c in "wax+") or (args[2] or 0) & _WRITE_FLAGS)
    if opens_for_writing or event in _CREATES:
        with _lock:
            for written in _watches:
                written.append(args[0])


@contextmanager
def files_written() -> Iterator[list[object]]:
    """The paths opened for writing or created while the block runs.

    The watch first proves it works (a write to os.devnull must be seen): the negative case.
    """
    global _installed
    written: list[object] = []
    with _lock:
        if not _installed:
            sys.addaudithook(_audit)  # hooks cannot be removed: this one idles between blocks
            _installed = True
        _watches.append(written)
    try:
        with open(os.devnull, "w"):
            pass
        assert written == [os.devnull], written
        written.clear()
        yield written
    finally:
        with _lock:
            _watches.remove(written)
