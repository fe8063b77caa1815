"""Every walkthrough the docs give runs verbatim, on this machine, loopback only.

The shell blocks are read from the pages as published and run with bash, unchanged, in a
directory laid out like the repository root (its `examples/`), with the installed
`ack-secrets-provider` on PATH. A block the page says to leave running is started in the
background and waited for; the output a page shows is compared with the real output. The
environment is a user's: nothing disables the metadata service, so a walkthrough that forgot to
point a service at the emulator would try the real address. Every process a walkthrough starts
runs under tests/loopback_guard.py: an address outside loopback is refused and logged, and each
test fails when the log is not empty (a caller that catches the refusal cannot hide it). The
mount walkthrough's overrides are also read before it runs: every service goes to the emulator,
including those a given run happens not to call.

Not run here, because they need a cluster, a registry or the network: the cluster steps of
docs/quickstart.md (docker, helm install, kubectl) and docs/installation.md. The quick start's
SecretProviderClass is checked by running the page's own `lint` line on the page's own manifest.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from loopback_guard import child_environment

from ack_secrets_provider.core.cloud.endpoints import CREDENTIAL_SERVICES

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.DOTALL | re.MULTILINE)


def blocks(page: Path, heading: str) -> list[tuple[str, str]]:
    """(language, body) of every fenced block in the section under `heading`."""
    text = page.read_text(encoding="utf-8")
    assert heading in text, f"{page.name} has no section {heading!r}"
    rest = text.split(heading, 1)[1]
    # the section ends at the next heading outside a code block (`# demo.yaml` is a comment)
    masked = _FENCE.sub(lambda match: " " * len(match.group(0)), rest)
    end = re.search(r"^#{1,3} ", masked, flags=re.MULTILINE)
    return _FENCE.findall(rest[:end.start()] if end else rest)


def shell_blocks(page: Path, heading: str) -> list[str]:
    return [body for language, body in blocks(page, heading) if language == "sh"]


#: what the walkthroughs' processes tried outside loopback (tests/loopback_guard.py)
OUTSIDE_LOG = "non-loopback.log"


@pytest.fixture()
def workdir(tmp_path: Path) -> Iterator[Path]:
    """A directory laid out like the repository root, as the pages assume; the test fails if a
    process it ran tried an address outside loopback."""
    root = tmp_path / "repository"
    root.mkdir()
    (root / "examples").symlink_to(ROOT / "examples", target_is_directory=True)
    yield root
    outside = tmp_path / OUTSIDE_LOG
    assert not outside.exists(), outside.read_text()


def user_environment(workdir: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if key not in ("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "NO_COLOR", "FORCE_COLOR")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return child_environment(env, workdir.parent / OUTSIDE_LOG)


class Background:
    """Blocks left running, as in a terminal of their own; stopped with SIGTERM (Ctrl-C)."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self.processes: list[tuple[subprocess.Popen[str], Path]] = []

    def start(self, script: str) -> subprocess.Popen[str]:
        log = self.cwd / f"terminal-{len(self.processes) + 1}.log"
        with log.open("w") as out:
            process = subprocess.Popen(["bash", "-c", script], cwd=self.cwd,
                                       env=user_environment(self.cwd), stdout=out,
                                       stderr=subprocess.STDOUT, text=True,
                                       start_new_session=True)
        self.processes.append((process, log))
        return process

    def output(self, process: subprocess.Popen[str]) -> str:
        return next(log for p, log in self.processes if p is process).read_text()

    def wait_until(self, ready: Callable[[], bool], process: subprocess.Popen[str],
                   timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            assert process.poll() is None, f"exited early:\n{self.output(process)}"
            assert time.monotonic() < deadline, f"not ready in time:\n{self.output(process)}"
            time.sleep(0.1)

    def stop(self) -> list[int | None]:
        codes = []
        for process, _ in reversed(self.processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
            try:
                codes.append(process.wait(timeout=40))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                codes.append(process.wait())
        return codes


@pytest.fixture()
def terminals(workdir: Path) -> Iterator[Background]:
    background = Background(workdir)
    try:
        yield background
    finally:
        background.stop()


def accepts(address: tuple[str, int]) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(address) == 0


# -- docs/cli.md: mount ------------------------------------------------------------------------


MOUNT = "## `mount`: try a SecretProviderClass against a running provider"


def test_the_mount_walkthrough_runs_verbatim(workdir: Path, terminals: Background) -> None:
    emulator_block, serve_block, mount_block = shell_blocks(DOCS / "cli.md", MOUNT)
    shown = next(body for language, body in blocks(DOCS / "cli.md", MOUNT)
                 if language == "text")
    listen = re.search(r"--listen 127\.0\.0\.1:(\d+)", emulator_block)
    volume = re.search(r"--provider-volume (\S+)", serve_block)
    assert listen and volume, "the walkthrough changed shape: update this test"
    port, socket_dir = int(listen.group(1)), volume.group(1)
    # The page says every service goes to the emulator: the built-in backends' and the
    # credential plugins', also those this run does not call (metadata, with an AccessKey and
    # --region), which the loopback guard alone would never see.
    overrides = dict(re.findall(r"--endpoint-override (\w+)=(\S+)", serve_block))
    assert overrides == {service: f"http://127.0.0.1:{port}"
                         for service in ("kms", "oos", *CREDENTIAL_SERVICES)}, overrides

    emulator = terminals.start(emulator_block)
    terminals.wait_until(lambda: accepts(("127.0.0.1", port)), emulator)
    provider = terminals.start(serve_block)
    terminals.wait_until(lambda: (workdir / socket_dir / "alibabacloud.sock").exists(), provider)

    result = subprocess.run(["bash", "-c", mount_block], cwd=workdir,
                            env=user_environment(workdir), capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr + terminals.output(provider)
    table, last = result.stdout.splitlines()[:-1], result.stdout.splitlines()[-1]
    *shown_table, shown_last = shown.splitlines()
    assert table == shown_table  # the files, sizes, modes and versions the page shows
    assert last.split(" to ")[0] == shown_last.split(" to ")[0]
    assert last.endswith(str(workdir / "demo-mount"))
    assert (workdir / "demo-mount" / "app_db-password").read_text() == "db-password-v2"

    log = terminals.output(provider)
    assert "result=OK" in log and "100.100.100.200" not in log
    assert terminals.stop() == [0, 0], log  # Ctrl-C stops both cleanly


# -- docs/emulator.md ----------------------------------------------------------------------------


def test_the_emulator_command_runs_verbatim(workdir: Path, terminals: Background) -> None:
    (command,) = shell_blocks(DOCS / "emulator.md", "## Running it")
    emulator = terminals.start(command)
    terminals.wait_until(lambda: terminals.output(emulator).count("\n") >= 2, emulator)
    info = json.loads(terminals.output(emulator).splitlines()[0])
    assert info["http_url"].startswith("http://127.0.0.1:")
    assert info["https_url"].startswith("https://127.0.0.1:")
    assert {"kms", "oos", "sts", "metadata"} <= set(info["services"])
    assert terminals.stop() == [0]


# -- README.md and docs/quickstart.md ------------------------------------------------------------


def test_the_quick_start_demo_line_runs_verbatim(workdir: Path) -> None:
    """`python3 tasks.py demo`, from the repository root, as README and the quick start say.

    (The other line, `python3 tasks.py test`, is what CI runs.)"""
    lines = {page: [line for block in shell_blocks(page, "## ") for line in block.splitlines()
                    if "tasks.py demo" in line]
             for page in (ROOT / "README.md", DOCS / "quickstart.md")}
    (line,) = set(lines[ROOT / "README.md"]) | set(lines[DOCS / "quickstart.md"])
    output = ROOT / "demo-mount"
    existed = output.exists()
    try:
        # from the repository root, as the pages say (`workdir` only checks the loopback log)
        result = subprocess.run(["bash", "-c", line], cwd=ROOT, env=user_environment(workdir),
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "(rotated)" in result.stdout
        assert (output / "app_db-password").read_text() == "db-password-v3"
    finally:
        if not existed:
            shutil.rmtree(output, ignore_errors=True)


def test_the_quick_start_manifest_passes_its_own_lint_line(workdir: Path) -> None:
    section = "### 4. A SecretProviderClass and a pod"
    (manifest,) = [body for language, body in blocks(DOCS / "quickstart.md", section)
                   if language == "yaml"]
    name = manifest.splitlines()[0].removeprefix("# ").strip()
    assert name == "demo.yaml"
    (workdir / name).write_text(manifest)
    (commands,) = shell_blocks(DOCS / "quickstart.md", section)
    (lint_line,) = [line for line in commands.splitlines() if " lint " in line]
    result = subprocess.run(["bash", "-c", lint_line], cwd=workdir,
                            env=user_environment(workdir), capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "checked 1 SecretProviderClass: 0 errors" in result.stdout
