"""The fetch path end to end against the emulator: coalescing, pinned versions, OOS batches,
the cache switch, the retry budget and the outage gate under a 503 storm, deadlines."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from types import MappingProxyType
from typing import Any

import grpc
import pytest
from file_writes import files_written
from installed import SERVICES
from scraped import sample

from ack_secrets_provider.backends.kms.emulator import put_secret_version
from ack_secrets_provider.core.cloud.endpoints import EndpointOverrides
from ack_secrets_provider.core.emulator.testing import (
    ACCESS_KEY_ID,
    ACCESS_KEY_SECRET,
    EmulatorHandle,
)
from ack_secrets_provider.core.errors import DeadlineExceeded, Unavailable
from ack_secrets_provider.core.mount.service import MountService
from ack_secrets_provider.core.resilience.deadline import Deadline
from ack_secrets_provider.core.resilience.fetcher import Fetcher
from ack_secrets_provider.core.server.app import load_plugins
from ack_secrets_provider.core.server.driver_client import (
    driver_attributes,
    files_of,
    running_provider,
    versions_of,
)
from ack_secrets_provider.core.settings import ProviderSettings, RetryPolicy

P = "ack_secrets_provider"


def settings_for(emulator: EmulatorHandle, **changes: Any) -> ProviderSettings:
    base = ProviderSettings(
        region="cn-hangzhou",
        endpoint_overrides=EndpointOverrides.parse(
            [f"kms={emulator.http_url}", f"oos={emulator.http_url}"], SERVICES),
        environ=MappingProxyType({"ACCESS_KEY_ID": ACCESS_KEY_ID,
                                  "SECRET_ACCESS_KEY": ACCESS_KEY_SECRET}),
        cache_ttl=60.0,
    )
    return replace(base, **changes)


def objects(*entries: str) -> str:
    return driver_attributes({"objects": "".join(entries)})


def kms(name: str, **fields: str) -> str:
    extra = "".join(f"  {k}: {v!r}\n" for k, v in fields.items())
    return f"- objectName: {name}\n  objectType: kms\n{extra}"


def oos(name: str, **fields: str) -> str:
    extra = "".join(f"  {k}: {v!r}\n" for k, v in fields.items())
    return f"- objectName: {name}\n  objectType: oos\n{extra}"


def calls(emulator: EmulatorHandle, api: str) -> int:
    return int(emulator.counters()["by_api"].get(api, 0))


@pytest.fixture
def service(emulator: EmulatorHandle) -> Iterator[MountService]:
    """An in-process MountService (real SDKs, real emulator) with the cache on."""
    settings = settings_for(emulator)
    backends, credentials = load_plugins(settings, autoload_third_party=False)
    svc = MountService(settings, backends, credentials)
    yield svc
    svc.close()
    backends.close()


def mount(svc: MountService, attributes: str, timeout: float = 20.0) -> dict[str, bytes]:
    outcome = svc.mount(attributes, "null", '"420"', Deadline.after(timeout))
    return {f.path: f.contents for f in outcome.files}


def mount_versions(svc: MountService, attributes: str) -> dict[str, tuple[bytes, str]]:
    outcome = svc.mount(attributes, "null", '"420"', Deadline.after(20))
    return {f.path: (f.contents, f.version) for f in outcome.files}


def test_concurrent_identical_mounts_make_one_upstream_call(emulator: EmulatorHandle,
                                                           tmp_path: Any) -> None:
    emulator.set_faults(latency_ms=300)
    n = 12
    attributes = objects(kms("app/db-password"))
    with running_provider(settings_for(emulator), tmp_path,
                          autoload_third_party=False) as provider:
        m = provider.metrics
        barrier = threading.Barrier(n)
        results: list[dict[str, bytes]] = []
        errors: list[BaseException] = []

        def one() -> None:
            barrier.wait(timeout=10)
            try:
                results.append(files_of(provider.mount(attributes)))
            except BaseException as exc:  # collected and asserted below
                errors.append(exc)

        threads = [threading.Thread(target=one) for _ in range(n)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert not errors
        assert results == [{"app_db-password": b"new-password"}] * n
        assert calls(emulator, "kms.GetSecretValue") == 1
        assert sample(m, f"{P}_cache_coalesced_waits_total", {"service": "kms"}) >= n - 2
        # A later mount is a cache hit: still one call.
        assert files_of(provider.mount(attributes)) == {"app_db-password": b"new-password"}
        assert calls(emulator, "kms.GetSecretValue") == 1
        assert sample(m, f"{P}_cache_hits_total", {"service": "kms"}) >= 1


def test_versions_are_upstream_versions_and_pins_are_honoured(
        emulator: EmulatorHandle, service: MountService) -> None:
    both = objects(kms("app/db-password"), kms("app/db-password", objectVersion="v1",
                                               objectAlias="old"))
    assert mount_versions(service, both) == {
        "app_db-password": (b"new-password", "v2"), "old": (b"old-password", "v1")}
    put_secret_version(emulator, "app/db-password", "rotated", version_id="v3")
    # Within the TTL the cached current value keeps its upstream version: no call, no change.
    assert mount_versions(service, both) == {
        "app_db-password": (b"new-password", "v2"), "old": (b"old-password", "v1")}
    assert calls(emulator, "kms.GetSecretValue") == 2
    # A stage label is a different selector: its own fetch, its own (new) upstream version.
    by_label = mount_versions(service, objects(kms("app/db-password",
                                                   objectVersionLabel="ACSCurrent")))
    assert by_label == {"app_db-password": (b"rotated", "v3")}
    assert calls(emulator, "kms.GetSecretValue") == 3


def test_rotation_shows_after_the_ttl_and_pins_live_longer(emulator: EmulatorHandle) -> None:
    now = [1000.0]
    settings = settings_for(emulator, cache_ttl=60.0, cache_pinned_ttl=3600.0)
    backends, credentials = load_plugins(settings, autoload_third_party=False)
    svc = MountService(settings, backends, credentials,
                       fetcher=Fetcher(settings, metrics=credentials.metrics,
                                       clock=lambda: now[0]))
    try:
        attributes = objects(kms("app/db-password"), kms("app/db-password", objectVersion="v2",
                                                         objectAlias="pinned"))
        assert mount_versions(svc, attributes)["app_db-password"] == (b"new-password", "v2")
        put_secret_version(emulator, "app/db-password", "rotated", version_id="v3")
        now[0] += 59.0
        assert mount_versions(svc, attributes)["app_db-password"] == (b"new-password", "v2")
        assert calls(emulator, "kms.GetSecretValue") == 2
        now[0] += 1.0  # TTL reached: the unpinned value is fetched again, the pin is not
        assert mount_versions(svc, attributes) == {
            "app_db-password": (b"rotated", "v3"), "pinned": (b"new-password", "v2")}
        assert calls(emulator, "kms.GetSecretValue") == 3
        now[0] += 3000.0  # still inside the pinned TTL, past the unpinned one
        mount(svc, attributes)
        assert calls(emulator, "kms.GetSecretValue") == 4
        now[0] += 700.0  # past the pinned TTL too
        mount(svc, attributes)
        assert calls(emulator, "kms.GetSecretValue") == 6
    finally:
        svc.close()
        backends.close()


def test_reported_version_moves_only_with_upstream(emulator: EmulatorHandle,
                                                  tmp_path: Any) -> None:
    """Over the real socket: repeated mounts report the same upstream version (no call)."""
    with running_provider(settings_for(emulator), tmp_path,
                          autoload_third_party=False) as provider:
        attributes = objects(kms("app/db-password"))
        first = versions_of(provider.mount(attributes))
        second = versions_of(provider.mount(attributes))
        assert first == second == {"app_db-password": "v2"}
        assert calls(emulator, "kms.GetSecretValue") == 1


def test_values_are_held_in_memory_only(emulator: EmulatorHandle, tmp_path: Any) -> None:
    """docs/rotation-and-caching.md: nothing is written to disk. A mount that fetches and one
    served from the cache, over the socket, open no file for writing and create none."""
    with running_provider(settings_for(emulator), tmp_path,
                          autoload_third_party=False) as provider:
        attributes = objects(kms("app/db-password"), oos("app-token"))
        with files_written() as written:
            mounted = [files_of(provider.mount(attributes)) for _ in range(2)]
    assert mounted == [{"app_db-password": b"new-password", "app-token": b"token-v2"}] * 2
    assert emulator.counters()["total"] == 2  # the second mount came from the cache
    assert written == []


def test_oos_batches_fetch_only_the_objects_not_in_the_cache(
        emulator: EmulatorHandle, service: MountService) -> None:
    assert mount(service, objects(oos("app-token"))) == {"app-token": b"token-v2"}
    assert calls(emulator, "oos.GetSecretParameter") == 1
    files = mount(service, objects(oos("app-token"), oos("app-smtp"), oos("other-param")))
    assert files == {"app-token": b"token-v2", "app-smtp": b"smtp-v1", "other-param": b"hidden"}
    # app-token came from the cache; the two misses went out in one batch call.
    assert calls(emulator, "oos.GetSecretParameter") == 1
    assert calls(emulator, "oos.GetSecretParameters") == 1
    assert emulator.counters()["by_secret"].get("oos/app-token") == 1
    mount(service, objects(oos("app-token"), oos("app-smtp"), oos("other-param")))
    assert emulator.counters()["total"] == 2


def test_cache_off_calls_upstream_for_every_mount(emulator: EmulatorHandle) -> None:
    """docs/rotation-and-caching.md: `0` disables the cache, coalescing included."""
    settings = settings_for(emulator, cache_ttl=0.0)
    backends, credentials = load_plugins(settings, autoload_third_party=False)
    svc = MountService(settings, backends, credentials)
    try:
        assert svc.fetcher.cache is None
        for _ in range(3):
            assert mount(svc, objects(kms("app/config"))) == {
                "app_config": b'{"user": "app", "password": "p@ss"}'}
        assert calls(emulator, "kms.GetSecretValue") == 3
        emulator.set_faults(latency_ms=300)  # four identical mounts at once: four calls
        results: list[dict[str, bytes]] = []
        threads = [threading.Thread(
            target=lambda: results.append(mount(svc, objects(kms("app/config")))))
            for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=20)
        assert not any(thread.is_alive() for thread in threads)
        assert results == [{"app_config": b'{"user": "app", "password": "p@ss"}'}] * 4
        assert calls(emulator, "kms.GetSecretValue") == 7
    finally:
        svc.close()
        backends.close()


def test_cache_hits_do_not_count_against_the_call_rate(emulator: EmulatorHandle) -> None:
    """docs/rotation-and-caching.md, the rate limit: only upstream calls take a slot. At 0.001
    KMS calls per second (a burst of one), the first mount takes the only slot; mounts of the
    same object are then cache hits, while another object is refused naming the flag."""
    settings = settings_for(emulator, rate_limits=MappingProxyType({"kms": 0.001}))
    backends, credentials = load_plugins(settings, autoload_third_party=False)
    svc = MountService(settings, backends, credentials)
    try:
        for _ in range(5):
            assert mount(svc, objects(kms("app/db-password"))) == {
                "app_db-password": b"new-password"}
        assert calls(emulator, "kms.GetSecretValue") == 1
        with pytest.raises(DeadlineExceeded, match="--max-concurrent-kms-secret-pulls"):
            mount(svc, objects(kms("app/config")))
    finally:
        svc.close()
        backends.close()


def test_a_503_storm_never_exceeds_the_retry_budget(emulator: EmulatorHandle) -> None:
    """40 mounts of distinct objects (no cache help) while every call answers 503."""
    policy = RetryPolicy(max_attempts=5, base_delay=0.001, max_delay=0.005, budget_tokens=6,
                         budget_refund=0.2)
    settings = settings_for(emulator, retry=policy, cache_ttl=0.0)
    backends, credentials = load_plugins(settings, autoload_third_party=False)
    now = [time.monotonic()]  # the outage gate's clock: stands still until the test moves it
    svc = MountService(settings, backends, credentials,
                       fetcher=Fetcher(settings, metrics=credentials.metrics,
                                       clock=lambda: now[0]))
    emulator.set_faults(outage_seconds=60)
    names = ["app/db-password", "app/config", "app/binary", "other/secret"]
    outcomes: list[str] = []
    try:
        for i in range(40):
            try:
                mount(svc, objects(kms(names[i % 4])), timeout=5)
                outcomes.append("ok")
            except Unavailable as exc:
                outcomes.append("gate" if "probe call" in exc.message else
                                "budget" if "retry budget" in exc.message else "other")
        total = emulator.counters()["total"]
        # Before the gate closes: the first attempts of the mounts that ran before it closed
        # plus at most the budget's retries; with the clock standing still, no probe after.
        before_gate = len(outcomes) - outcomes.count("gate")
        assert total <= before_gate + policy.budget_tokens
        assert "ok" not in outcomes and outcomes.count("gate") >= 35
        emulator.clear_faults()
        assert emulator.counters()["total"] == total  # the gate kept every refused mount local
        with pytest.raises(Unavailable, match="probe call"):  # healed, but no probe slot yet
            mount(svc, objects(kms("app/config")))
        now[0] += 1.0  # the next probe slot
        assert mount(svc, objects(kms("app/config")))  # recovery: the probe succeeds
        assert mount(svc, objects(kms("app/binary")))  # and the gate is open again
    finally:
        svc.close()
        backends.close()


def test_errors_are_shared_with_waiters_but_never_cached(
        emulator: EmulatorHandle, tmp_path: Any) -> None:
    emulator.set_faults(latency_ms=300)
    settings = settings_for(emulator)
    attributes = objects(kms("no/such-secret"))
    with running_provider(settings, tmp_path, autoload_third_party=False) as provider:
        codes: list[grpc.StatusCode] = []

        def one() -> None:
            try:
                provider.mount(attributes)
            except grpc.RpcError as exc:
                codes.append(exc.code())

        threads = [threading.Thread(target=one) for _ in range(5)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=20)
        assert codes == [grpc.StatusCode.NOT_FOUND] * 5
        assert calls(emulator, "kms.GetSecretValue") == 1
        with pytest.raises(grpc.RpcError):
            provider.mount(attributes)
        assert calls(emulator, "kms.GetSecretValue") == 2
