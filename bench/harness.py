"""Benchmark plumbing: the emulator and the provider as separate processes, a bounded gRPC load
generator, and the measurements (latency percentiles, the provider's own CPU and peak RSS,
upstream and STS calls counted by the emulator).

Everything listens on 127.0.0.1 or a unix socket in a temporary directory; every wait has a
timeout; every process started here is stopped by the context managers.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import grpc
import psutil

from ack_secrets_provider.core.emulator.testing import EmulatorHandle
from ack_secrets_provider.core.server.driver_client import ProviderClient

BENCH_DIR = Path(__file__).resolve().parent
REGION = "cn-hangzhou"


@dataclass
class Outcome:
    """One mount as the load generator saw it."""

    started: float
    seconds: float
    ok: bool
    code: str = "OK"


@dataclass
class Record:
    """One row of the results (the JSON the issue asks for, plus `variant` and `extra`)."""

    scenario: int
    mode: str
    variant: str
    mounts: int
    success_rate: float
    mounts_per_s: float
    p50_ms: float
    p99_ms: float
    upstream_calls: int
    sts_calls: int
    cpu_s_per_1000: float
    peak_rss_mb: float
    extra: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) by nearest rank; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, int(round(q * len(ordered) + 0.5)) - 1))
    return ordered[index]


# -- the provider process ---------------------------------------------------------------------


class ProviderProcess:
    """`ack-secrets-provider serve` in its own process (so RSS and CPU are the provider's)."""

    def __init__(self, flags: Sequence[str], env: dict[str, str], kube_token_file: str,
                 log_path: Path, *, floor: bool = False) -> None:
        self.dir = tempfile.mkdtemp(prefix="bench-sock-")
        self.socket = os.path.join(self.dir, "alibabacloud.sock")
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        # floor: bench/floor.py (`flags` are its own), the minimal Python gRPC server the
        # provider is compared with
        args = ([sys.executable, str(BENCH_DIR / "floor.py"), self.dir, *flags] if floor else
                [sys.executable, "-m", "ack_secrets_provider.core.cli", "serve",
                 "--provider-volume", self.dir, "--kube-token-file", kube_token_file,
                 "--kube-ca-file", "", "--healthz-port", "0", "--metrics-port", "0", *flags])
        self.proc = subprocess.Popen(args, env=env, stdout=self._log, stderr=self._log)
        self.ps = psutil.Process(self.proc.pid)
        deadline = time.monotonic() + 30
        while not os.path.exists(self.socket):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the provider did not start; see {log_path}")
            time.sleep(0.01)
        self.client = ProviderClient(self.socket)
        self.client.version(timeout=10)

    def cpu_seconds(self) -> float:
        times = self.ps.cpu_times()
        return float(times.user + times.system)

    def rss_mb(self) -> float:
        """The resident set now."""
        return float(self.ps.memory_info().rss) / (1024 * 1024)

    def peak_rss_mb(self) -> float:
        """VmHWM: the peak resident set of the process over its whole life."""
        with open(f"/proc/{self.proc.pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
        return float(self.ps.memory_info().rss) / (1024 * 1024)

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()
        with contextlib.suppress(OSError):
            os.rmdir(self.dir)


@contextlib.contextmanager
def provider(flags: Sequence[str], env: dict[str, str], kube_token_file: str,
             log_path: Path, *, floor: bool = False) -> Iterator[ProviderProcess]:
    process = ProviderProcess(flags, env, kube_token_file, log_path, floor=floor)
    try:
        yield process
    finally:
        process.stop()


# -- load ------------------------------------------------------------------------------------


def mount_once(client: ProviderClient, attributes: str, timeout: float) -> Outcome:
    started = time.monotonic()
    try:
        client.mount(attributes, timeout=timeout)
        return Outcome(started, time.monotonic() - started, True)
    except grpc.RpcError as exc:
        return Outcome(started, time.monotonic() - started, False, exc.code().name)


def closed_loop(client: ProviderClient, attributes: Sequence[str], concurrency: int,
                timeout: float = 30.0) -> tuple[list[Outcome], float]:
    """Mount every attribute string, `concurrency` at a time; (outcomes, wall seconds)."""
    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        outcomes = list(pool.map(lambda a: mount_once(client, a, timeout), attributes))
    return outcomes, time.monotonic() - start


def open_loop(client: ProviderClient, schedule: Sequence[tuple[float, str]], workers: int,
              timeout: float, ticks: Sequence[tuple[float, Callable[[], None]]] = ()
              ) -> tuple[list[Outcome], float, float]:
    """Start each mount at its offset (seconds) with at most `workers` in flight.

    `ticks` are (offset, callback) run by the scheduler at their time (round boundaries,
    fault changes). Returns (outcomes, wall seconds, t0 on the monotonic clock).
    """
    events: list[tuple[float, int, Any]] = [(t, 1, a) for t, a in schedule]
    events += [(t, 0, cb) for t, cb in ticks]
    events.sort(key=lambda e: (e[0], e[1]))
    outcomes: list[Outcome] = []
    lock = threading.Lock()
    slots = threading.BoundedSemaphore(workers)
    t0 = time.monotonic()

    def run(attributes: str) -> None:
        try:
            outcome = mount_once(client, attributes, timeout)
            with lock:
                outcomes.append(outcome)
        finally:
            slots.release()

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for offset, kind, payload in events:
            delay = t0 + offset - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if kind == 0:
                payload()
                continue
            if not slots.acquire(timeout=timeout + 5):
                with lock:
                    outcomes.append(Outcome(time.monotonic(), 0.0, False, "NOT_STARTED"))
                continue
            pool.submit(run, payload)
    return outcomes, time.monotonic() - t0, t0


# -- emulator counters ------------------------------------------------------------------------


def upstream_and_sts(emulator: EmulatorHandle) -> tuple[int, int]:
    by_service = emulator.counters().get("by_service", {})
    return (int(by_service.get("kms", 0)) + int(by_service.get("oos", 0)),
            int(by_service.get("sts", 0)))


def summarize(scenario: int, mode: str, variant: str, outcomes: Sequence[Outcome], wall: float,
              cpu_seconds: float, peak_rss: float, upstream: int, sts: int,
              **extra: Any) -> Record:
    ok = [o for o in outcomes if o.ok]
    latencies = [o.seconds * 1000 for o in outcomes]
    mounts = len(outcomes)
    return Record(
        scenario=scenario, mode=mode, variant=variant, mounts=mounts,
        success_rate=round(len(ok) / mounts, 5) if mounts else 0.0,
        mounts_per_s=round(mounts / wall, 2) if wall > 0 else 0.0,
        p50_ms=round(percentile(latencies, 0.50), 2),
        p99_ms=round(percentile(latencies, 0.99), 2),
        upstream_calls=upstream, sts_calls=sts,
        cpu_s_per_1000=round(cpu_seconds / mounts * 1000, 3) if mounts else 0.0,
        peak_rss_mb=round(peak_rss, 1),
        extra=extra,
    )
