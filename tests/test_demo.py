"""The README's main-job command: the demo runs the whole job and leaves nothing behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent


def test_demo_mounts_rotates_and_exits_cleanly(tmp_path: Path) -> None:
    out = tmp_path / "mount"
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    result = subprocess.run(
        [sys.executable, "-m", "ack_secrets_provider.core.cli", "demo", "--output", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=120, env={**os.environ},
    )
    assert result.returncode == 0, result.stderr
    assert "app_db-password" in result.stdout
    assert "v2 -> v3  (rotated)" in result.stdout
    # files written the way the driver writes them, with the rotated value
    assert os.readlink(out / "app_db-password") == "..data/app_db-password"
    assert (out / "app_db-password").read_text() == "db-password-v3"
    assert (out / "client.key").read_bytes() == bytes(range(16))
    assert (out / "config.json").stat().st_mode & 0o777 == 0o440
    # no secret value is printed, only names, sizes, modes and versions
    assert "db-password-v3" not in result.stdout and "p@ss" not in result.stdout
    after = {p.pid for p in psutil.Process().children(recursive=True)}
    assert after <= before
