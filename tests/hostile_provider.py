"""Helpers of the adversarial suite (tests/adversarial/): a provider run as a real process.

Each adversarial test starts `ack-secrets-provider serve` as a child process on a real unix
socket, sends what an attacker would (as a pod author, a tenant, an upstream or a rogue socket),
and measures the provider from outside with psutil: answer time, resident memory (peak, sampled
while the request runs) and CPU time after the answer. The bounds are far from what a protected
provider uses and far below what an unprotected one does, so a test fails when its protection is
removed without becoming flaky on a busy machine.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil

from ack_secrets_provider.core.emulator.testing import ACCESS_KEY_ID, ACCESS_KEY_SECRET
from ack_secrets_provider.core.server.driver_client import ProviderClient

MiB = 1024 * 1024
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class ProviderProcess:
    """A provider child process and the ways to watch it from outside."""

    popen: subprocess.Popen[bytes]
    process: psutil.Process
    socket_path: Path
    health_url: str
    client: ProviderClient
    log_path: Path

    def rss(self) -> int:
        return int(self.process.memory_info().rss)

    def cpu_seconds(self) -> float:
        times = self.process.cpu_times()
        return float(times.user + times.system)

    def get(self, path: str, timeout: float = 10.0) -> tuple[int, str]:
        try:
            with _NO_PROXY.open(self.health_url + path, timeout=timeout) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def mounts(self, code: str) -> float:
        """ack_secrets_provider_mounts_total for one gRPC code, from /metrics."""
        _, text = self.get("/metrics")
        total = 0.0
        for line in text.splitlines():
            if line.startswith("ack_secrets_provider_mounts_total{") and f'code="{code}"' in line:
                total += float(line.rsplit(" ", 1)[1])
        return total

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def provider_process(directory: Path, *flags: str,
                     environ: dict[str, str] | None = None) -> Iterator[ProviderProcess]:
    """`ack-secrets-provider serve` on `<directory>/sock/alibabacloud.sock`, stopped after."""
    socket_dir = directory / "sock"
    port = free_port()
    log_path = directory / "provider.log"
    env = {**os.environ, "ACCESS_KEY_ID": ACCESS_KEY_ID, "SECRET_ACCESS_KEY": ACCESS_KEY_SECRET,
           **(environ or {})}
    args = [sys.executable, "-m", "ack_secrets_provider.core.cli", "serve",
            "--provider-volume", str(socket_dir), "--healthz-addr", "127.0.0.1",
            "--healthz-port", str(port), "--metrics-port", "0", "--region", "cn-hangzhou",
            "--no-cache", *flags]
    with open(log_path, "wb") as log:
        popen = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
    # one attempt per call: these tests look at the provider's own first answer
    client = ProviderClient(socket_dir / "alibabacloud.sock", driver_retries=False)
    try:
        deadline = time.monotonic() + 30
        while not (socket_dir / "alibabacloud.sock").exists():
            if popen.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the provider did not start:\n{log_path.read_text()}")
            time.sleep(0.05)
        client.version(timeout=20)
        yield ProviderProcess(popen, psutil.Process(popen.pid), socket_dir / "alibabacloud.sock",
                              f"http://127.0.0.1:{port}", client, log_path)
    finally:
        client.close()
        popen.terminate()
        try:
            popen.wait(timeout=20)
        except subprocess.TimeoutExpired:  # pragma: no cover - a hung provider is a failure
            popen.kill()
            popen.wait()


class PeakRss:
    """Samples a process's resident memory every few milliseconds while the block runs."""

    def __init__(self, process: psutil.Process) -> None:
        self.process = process
        self.before = int(process.memory_info().rss)
        self.peak = self.before
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, int(self.process.memory_info().rss))
            except psutil.Error:
                return
            self._stop.wait(0.002)

    @property
    def growth(self) -> int:
        return self.peak - self.before

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, int(self.process.memory_info().rss))


def cpu_after(provider: ProviderProcess, seconds: float = 1.0) -> float:
    """CPU seconds the provider uses in the `seconds` after now (work after the answer)."""
    start = provider.cpu_seconds()
    time.sleep(seconds)
    return provider.cpu_seconds() - start


def first_line(message: str) -> str:
    return re.split(r"\n", message, maxsplit=1)[0]


def file_tree(root: Path) -> dict[str, str]:
    """Every entry under `root`, links not followed: a link's target, "dir", a file's text, or
    "other" (a socket): what a test compares before and after a hostile write."""
    found = {}
    for folder, dirs, names in os.walk(root):
        for name in dirs + names:
            path = Path(folder) / name
            relative = str(path.relative_to(root))
            if path.is_symlink():
                found[relative] = "-> " + os.readlink(path)
            elif path.is_dir():
                found[relative] = "dir"
            elif path.is_file():
                found[relative] = path.read_text()
            else:
                found[relative] = "other"
    return found
