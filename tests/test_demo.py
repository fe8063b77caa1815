"""The README's main-job command: the demo runs the whole job from any folder, with only what the
package ships, and leaves nothing behind."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import psutil
import pytest
from loopback_guard import child_environment

from ack_secrets_provider.core.cli import main
from ack_secrets_provider.core.commands import demo

REPO = Path(__file__).resolve().parent.parent


def test_demo_mounts_rotates_and_exits_cleanly_from_any_folder(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"  # not the repository: no examples/ here
    elsewhere.mkdir()
    # "Nothing leaves 127.0.0.1", in a user's environment: the metadata service is not disabled
    # as the suite disables it, and every address the demo tries outside loopback is logged.
    environ = {k: v for k, v in os.environ.items() if k != "ALIBABA_CLOUD_ECS_METADATA_DISABLED"}
    outside = tmp_path / "non-loopback.log"
    # a session of its own: a process the demo left behind is reparented when it exits, but
    # keeps the session id (the demo's pid)
    demo_run = subprocess.Popen(
        [sys.executable, "-m", "ack_secrets_provider.core.cli", "demo"],
        cwd=elsewhere, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=child_environment(environ, outside), start_new_session=True,
    )
    stdout, stderr = demo_run.communicate(timeout=120)
    result = subprocess.CompletedProcess(demo_run.args, demo_run.returncode, stdout, stderr)
    left = [p.info for p in psutil.process_iter(["pid", "cmdline", "status"])
            if _session(p.pid) == demo_run.pid and p.info["status"] != psutil.STATUS_ZOMBIE]
    assert not left, f"the demo left processes behind: {left}"
    assert not outside.exists(), outside.read_text()
    assert result.returncode == 0, result.stderr
    out = elsewhere / "demo-mount"  # the default --output, relative to where it runs
    assert "app_db-password" in result.stdout
    assert "v2 -> v3  (rotated)" in result.stdout
    # files written the way the driver writes them, with the rotated value
    assert os.readlink(out / "app_db-password") == "..data/app_db-password"
    assert (out / "app_db-password").read_text() == "db-password-v3"
    assert (out / "client.key").read_bytes() == bytes(range(16))
    assert (out / "config.json").stat().st_mode & 0o777 == 0o440
    # no secret value is printed, only names, sizes, modes and versions
    assert "db-password-v3" not in result.stdout and "p@ss" not in result.stdout


@pytest.mark.parametrize("taken", ["a file", "a directory of the user's"])
def test_an_output_the_demo_may_not_write_is_refused_before_anything_starts(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], taken: str) -> None:
    output = tmp_path / "out"
    if taken == "a file":
        output.write_text("mine")
    else:
        output.mkdir()
        (output / "notes.txt").write_text("mine")
    assert main(["demo", "--output", str(output)]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(
        f"ack-secrets-provider demo: error: --output {output} is not a new or empty directory, "
        "nor one an earlier demo wrote; choose another")
    assert captured.out == ""  # refused before the emulator started
    assert sorted(p.name for p in tmp_path.rglob("*")) == (
        ["out"] if taken == "a file" else ["notes.txt", "out"])  # nothing written or removed


def _session(pid: int) -> int | None:
    try:
        return os.getsid(pid)
    except OSError:  # gone meanwhile
        return None


def test_examples_are_the_files_the_demo_ships() -> None:
    """One content: examples/ (what people read) and the package's demo_data (what runs)."""
    for name in (demo.SPC_FILE, demo.EMULATOR_DATA_FILE):
        shipped = (demo.DATA / name).read_text(encoding="utf-8")
        assert (REPO / "examples" / name).read_text(encoding="utf-8") == shipped, (
            f"examples/{name} differs from core/commands/demo_data/{name}; copy one over the "
            "other")


def test_a_built_wheel_carries_the_demo_data(tmp_path: Path) -> None:
    """What a plain `pip install` gets: the package data is declared, not only present."""
    source = tmp_path / "source"  # a copy: building in place would write into the checkout
    for name in ("core", "backends", "auth"):
        shutil.copytree(REPO / name, source / name,
                        ignore=shutil.ignore_patterns("__pycache__"))
    for path in REPO.iterdir():  # pyproject.toml, README.md, a license file...
        if path.is_file():
            shutil.copy2(path, source / path.name)
    # offline: with the setuptools of this environment (a test dependency), never an index
    outside = tmp_path / "non-loopback.log"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(source)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
        env=child_environment(dict(os.environ), outside),
    )
    assert not outside.exists(), outside.read_text()
    assert result.returncode == 0, result.stderr
    (wheel,) = tmp_path.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in (demo.SPC_FILE, demo.EMULATOR_DATA_FILE):
        assert f"ack_secrets_provider/core/commands/demo_data/{name}" in names
