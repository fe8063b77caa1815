"""Start-up cost: time from `ack-secrets-provider serve` being exec'd to its socket accepting.

Runs the real console script (no wrapper) `runs` times and reports the median time until the
socket file exists and until the first gRPC Version call is answered.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ack_secrets_provider.core.server.driver_client import ProviderClient


def _command() -> list[str]:
    script = Path(sys.executable).with_name("ack-secrets-provider")
    if script.exists():
        return [str(script)]
    found = shutil.which("ack-secrets-provider")
    return [found] if found else [sys.executable, "-m", "ack_secrets_provider.core.cli"]


def start_once() -> tuple[float, float]:
    directory = tempfile.mkdtemp(prefix="bench-start-")
    socket = os.path.join(directory, "alibabacloud.sock")
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    env["ALIBABA_CLOUD_ECS_METADATA_DISABLED"] = "true"
    started = time.monotonic()
    proc = subprocess.Popen(
        [*_command(), "serve", "--provider-volume", directory, "--healthz-port", "0",
         "--metrics-port", "0", "--region", "cn-hangzhou",
         "--endpoint-override", "kms=http://127.0.0.1:9"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = started + 30
        while not os.path.exists(socket):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the provider did not start")
            time.sleep(0.002)
        ready = time.monotonic() - started
        client = ProviderClient(socket)
        client.version(timeout=10)
        answered = time.monotonic() - started
        client.close()
        return ready * 1000, answered * 1000
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        shutil.rmtree(directory, ignore_errors=True)


def measure_startup(runs: int = 5) -> dict[str, Any]:
    samples = [start_once() for _ in range(runs)]
    return {
        "runs": runs,
        "socket_ready_ms_p50": statistics.median(s[0] for s in samples),
        "first_version_ms_p50": statistics.median(s[1] for s in samples),
        "socket_ready_ms": [round(s[0], 1) for s in samples],
    }


if __name__ == "__main__":
    print(measure_startup())
