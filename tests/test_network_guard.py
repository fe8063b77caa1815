"""The suite's own guard must refuse non-loopback connections (and allow loopback), and reads of
the reference folder beside the repository, in its process and in the processes tests start."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from loopback_guard import SIBLING_SHARED, child_environment


def run_guarded_child(code: str, log: Path) -> tuple[list[str], list[str]]:
    """Run `code` in a child started as the demo and walkthrough tests start theirs: what it
    printed (the errors it caught) and the refusals logged."""
    environ = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60, env=child_environment(environ, log))
    assert result.returncode == 0, result.stderr
    return result.stdout.split(), log.read_text().splitlines()


def test_connect_to_metadata_address_fails_loudly() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock, pytest.raises(
        RuntimeError, match="non-loopback"
    ):
        sock.connect(("100.100.100.200", 80))


def test_resolving_a_cloud_host_fails_loudly() -> None:
    with pytest.raises(RuntimeError, match="non-loopback"):
        socket.getaddrinfo("kms-vpc.cn-hangzhou.aliyuncs.com", 443)


def test_loopback_is_allowed() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        server.settimeout(5)
        with socket.create_connection(server.getsockname(), timeout=5) as client:
            accepted, _ = server.accept()
            with accepted:
                client.sendall(b"ping")
                assert accepted.recv(4) == b"ping"  # a real connection, not just no error


def test_a_child_process_is_guarded_and_a_hidden_refusal_is_still_logged(tmp_path) -> None:
    """What the demo and walkthrough tests rely on: a child started with `child_environment`
    is refused a non-loopback address, and the refusal is logged even when its code swallows
    the error (as a credential chain or region discovery falling back would)."""
    swallow = (
        "import socket\n"
        "try:\n"
        "    with socket.socket() as sock:\n"
        "        sock.connect(('100.100.100.200', 80))\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__)\n"
        "try:\n"
        "    socket.getaddrinfo('kms.cn-hangzhou.aliyuncs.com', 443)\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__)\n"
        "with socket.socket() as server:\n"  # loopback stays allowed and unlogged
        "    server.bind(('127.0.0.1', 0)); server.listen(1)\n"
        "    socket.create_connection(server.getsockname(), timeout=5).close()\n"
    )
    printed, logged = run_guarded_child(swallow, tmp_path / "non-loopback.log")
    assert printed == ["NetworkGuardError", "NetworkGuardError"]
    assert len(logged) == 2
    assert "non-loopback ('100.100.100.200', 80)" in logged[0]
    assert "'kms.cn-hangzhou.aliyuncs.com'" in logged[1]


def test_the_folder_beside_the_repository_is_refused_here_and_in_a_child(tmp_path) -> None:
    """The suite passes in a plain clone: reading `../shared` (the reference material beside a
    development checkout) is refused in the pytest process and in the processes tests start
    (the demo, the walkthroughs), where it is logged even if the child hides the error."""
    target = os.path.join(SIBLING_SHARED, "reference", "compat.md")
    with pytest.raises(RuntimeError, match="plain clone"):
        open(target).close()  # noqa: SIM115 - the open itself is refused
    hide = (f"import os\ntry:\n    open({target!r})\nexcept Exception as exc:\n"
            "    print(type(exc).__name__)\n"
            f"try:\n    os.listdir({SIBLING_SHARED!r})\nexcept Exception as exc:\n"
            "    print(type(exc).__name__)\n")
    printed, logged = run_guarded_child(hide, tmp_path / "refused.log")
    assert printed == ["NetworkGuardError", "NetworkGuardError"]
    assert len(logged) == 2 and all("plain clone" in line for line in logged)


def test_a_link_into_the_folder_beside_the_repository_is_refused_too(tmp_path) -> None:
    """A symlink (in the repository's test data, say) pointing into `../shared` reads it just
    the same: the guard looks at where a path leads, not at how it is written."""
    link = tmp_path / "reference"
    link.symlink_to(SIBLING_SHARED, target_is_directory=True)
    with pytest.raises(RuntimeError, match="plain clone"):
        open(link / "reference" / "compat.md").close()  # noqa: SIM115 - the open is refused
