"""The suite's two rules, for its own process and for the processes its tests start: reach
loopback only, and read nothing in the `shared/` folder beside the repository (the suite must
pass in a plain clone: the facts a test needs live in the repository, tests/data/).

tests/conftest.py applies `refusal` in the pytest process. A test that runs a command in a child
process (the demo, the docs' walkthroughs) gives it `child_environment`: Python then imports
tests/loopback_guard_site/sitecustomize.py at start-up, which applies the same rule in the child
and writes every refused address to a log file the test reads, so a refusal that the code under
test catches and hides still fails the test.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
from pathlib import Path

#: where the child's sitecustomize.py is; the variable naming the child's log of refusals
SITE_DIR = Path(__file__).resolve().parent / "loopback_guard_site"
LOG_VARIABLE = "ACK_TEST_NON_LOOPBACK_LOG"
#: the reference folder beside the repository (`../shared` of a checkout)
SIBLING_SHARED = os.path.realpath(os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.realpath(__file__)))), "shared")) + os.sep


class NetworkGuardError(RuntimeError):
    """A test tried to reach a non-loopback address, or to read `shared/` beside the
    repository."""


def is_loopback_host(host: object) -> bool:
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return False
    if host in ("", "localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def refusal(event: str, args: tuple[object, ...]) -> str | None:
    """Why this audit event breaks a rule: reaching outside loopback, or reading `shared/`
    beside the repository (None: it does not)."""
    if event == "socket.connect":
        sock, address = args[0], args[1]
        family = getattr(sock, "family", None)
        if (family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple)
                and not is_loopback_host(address[0])):
            return f"tried to connect to non-loopback {address!r}"
    elif event == "socket.getaddrinfo" and not is_loopback_host(args[0]):
        return f"tried to resolve non-loopback host {args[0]!r}"
    elif event in ("open", "os.listdir", "os.scandir") and isinstance(
            args[0], str | bytes | os.PathLike):
        # realpath: a symlink in the repository pointing into ../shared is ../shared too
        path = os.path.realpath(os.fsdecode(args[0]))
        if (path + os.sep).startswith(SIBLING_SHARED):  # the folder itself, or inside it
            return (f"tried to open {path}: tests must pass in a plain clone; keep the data in "
                    "the repository (tests/data/)")
    return None


def child_environment(environ: dict[str, str], log: Path) -> dict[str, str]:
    """`environ` for a child process that must stay on loopback; refusals are written to `log`."""
    path = os.pathsep.join(p for p in (str(SITE_DIR), environ.get("PYTHONPATH")) if p)
    return {**environ, "PYTHONPATH": path, LOG_VARIABLE: str(log)}


def install_in_child() -> None:
    """The audit hook of a child process (called by its sitecustomize.py)."""
    log = os.environ.get(LOG_VARIABLE)

    def audit(event: str, args: tuple[object, ...]) -> None:
        reason = refusal(event, args)
        if reason is None:
            return
        if log:
            with open(log, "a", encoding="utf-8") as out:
                out.write(f"pid {os.getpid()} {' '.join(sys.argv)}: {reason}\n")
        raise NetworkGuardError(f"test child {reason}")

    sys.addaudithook(audit)
