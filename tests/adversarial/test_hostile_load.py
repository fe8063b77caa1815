"""Many Mounts stuck on a slow upstream: capped, refused at once beyond the cap, and neither the
liveness probe nor `Version` waits behind them (issue 10, "40 mounts stuck on an 8 s upstream")."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from hostile_provider import ProviderProcess, provider_process

from ack_secrets_provider.core.emulator.testing import (
    EmulatorHandle,
    default_seed,
    running_emulator,
)
from ack_secrets_provider.core.server.driver_client import driver_attributes
from ack_secrets_provider.core.settings import ProviderSettings

MOUNTS = 40
UPSTREAM_SECONDS = 8.0
CAP = ProviderSettings().max_concurrent_mounts


@pytest.fixture
def slow_upstream(tmp_path: Path) -> Iterator[tuple[EmulatorHandle, ProviderProcess]]:
    with running_emulator(default_seed()) as emulator, provider_process(
        tmp_path, "--endpoint-override", f"kms={emulator.http_url}",
    ) as provider:
        emulator.set_faults(service="kms", latency_ms=UPSTREAM_SECONDS * 1000)
        yield emulator, provider


def test_mounts_beyond_the_cap_are_refused_at_once_and_probes_stay_fast(
    slow_upstream: tuple[EmulatorHandle, ProviderProcess],
) -> None:
    _, provider = slow_upstream
    attributes = driver_attributes({"objects": "- objectName: app/config\n"})
    results: list[tuple[grpc.StatusCode, float, str]] = []
    lock = threading.Lock()

    def one_mount() -> None:
        started = time.monotonic()
        try:
            provider.client.mount(attributes, timeout=UPSTREAM_SECONDS * 3)
            outcome = (grpc.StatusCode.OK, "")
        except grpc.RpcError as exc:
            outcome = (exc.code(), exc.details() or "")
        with lock:
            results.append((outcome[0], time.monotonic() - started, outcome[1]))

    threads = [threading.Thread(target=one_mount) for _ in range(MOUNTS)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + UPSTREAM_SECONDS / 2
    while len(results) < MOUNTS - CAP and time.monotonic() < deadline:
        time.sleep(0.02)
    # now CAP mounts wait on the upstream: the probe and Version must not wait with them
    started = time.monotonic()
    status, _ = provider.get("/healthz")
    health_seconds = time.monotonic() - started
    version_seconds = []
    for _ in range(5):
        started = time.monotonic()
        provider.client.version(timeout=10)
        version_seconds.append(time.monotonic() - started)
    for thread in threads:
        thread.join(timeout=UPSTREAM_SECONDS * 4)

    assert status == 200 and health_seconds < 1.0, (status, health_seconds)
    assert statistics.median(version_seconds) < 0.1, version_seconds
    refused = [(seconds, message) for code, seconds, message in results
               if code == grpc.StatusCode.UNAVAILABLE]
    served = [code for code, _, _ in results if code == grpc.StatusCode.OK]
    assert len(refused) == MOUNTS - CAP and len(served) == CAP, results
    assert all(seconds < 1.0 for seconds, _ in refused), refused
    assert all("(--max-concurrent-mounts)" in message for _, message in refused)
    assert provider.mounts("UNAVAILABLE") == MOUNTS - CAP  # counted like any refused mount
    # logged with the reason docs/security.md and troubleshooting.md give
    assert provider.log().count("ProviderBusy") == MOUNTS - CAP
