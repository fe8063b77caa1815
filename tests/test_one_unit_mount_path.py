"""A mount with one unit to fetch (one object, or one batch) fetches it on the caller's (gRPC
handler) thread, without the fetch pool: the same values and the same answers to failures as the
pool path, and still within the mount's deadline; mounts of several units still use the pool."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from types import MappingProxyType

import ack_test_backend
import pytest
from installed import SERVICES

from ack_secrets_provider.core.cloud.endpoints import EndpointOverrides
from ack_secrets_provider.core.emulator.testing import (
    ACCESS_KEY_ID,
    ACCESS_KEY_SECRET,
    EmulatorHandle,
)
from ack_secrets_provider.core.errors import InternalError, ProviderError
from ack_secrets_provider.core.mount.service import MountOutcome, MountService
from ack_secrets_provider.core.resilience.deadline import Deadline
from ack_secrets_provider.core.server.app import load_plugins
from ack_secrets_provider.core.server.driver_client import driver_attributes
from ack_secrets_provider.core.settings import ProviderSettings

SECRETS = json.dumps({"access_key": ACCESS_KEY_ID, "access_secret": ACCESS_KEY_SECRET})


@pytest.fixture
def service(emulator: EmulatorHandle) -> Iterator[MountService]:
    """Cache off: every mount fetches (a cold mount)."""
    settings = ProviderSettings(
        region="cn-hangzhou",
        endpoint_overrides=EndpointOverrides.parse([f"kms={emulator.http_url}"], SERVICES),
        environ=MappingProxyType({}), cache_ttl=0,
    )
    backends, credentials = load_plugins(settings)
    svc = MountService(settings, backends, credentials)
    ack_test_backend.reset()
    yield svc
    svc.close()
    backends.close()


def attributes(*names: str, object_type: str = "testmem") -> str:
    return driver_attributes({"objects": "".join(
        f"- {{objectName: {name}, objectType: {object_type}}}\n" for name in names)})


def mount(svc: MountService, attrs: str, seconds: float = 20.0) -> MountOutcome:
    return svc.mount(attrs, SECRETS, '"420"', Deadline.after(seconds))


def close_the_pool(svc: MountService) -> None:
    """From here on, a mount that needs the fetch pool fails (the pool refuses new work)."""
    svc.close()


def files(outcome: MountOutcome) -> list[tuple[str, bytes, str]]:
    return [(f.path, f.contents, f.version) for f in outcome.files]


def test_a_one_object_mount_is_fetched_without_the_pool(service: MountService) -> None:
    pooled = mount(service, attributes("a", "b"))  # two units: fetched in the pool
    close_the_pool(service)
    alone = mount(service, attributes("a"))  # cache off: fetched again, on this thread
    assert files(alone) == files(pooled)[:1]
    assert ack_test_backend.CALLS["a"] == 2
    # the negative: a mount of several units still goes through the (now closed) pool
    with pytest.raises(RuntimeError, match="shutdown"):
        mount(service, attributes("a", "b"))


def test_a_one_object_kms_mount_is_fetched_without_the_pool(
    emulator: EmulatorHandle, service: MountService
) -> None:
    kms = attributes("app/db-password", object_type="kms")
    first = mount(service, kms)
    close_the_pool(service)
    calls = emulator.counters()["by_service"]["kms"]
    assert files(mount(service, kms)) == files(first)
    assert emulator.counters()["by_service"]["kms"] == calls + 1


@pytest.mark.parametrize("names", [("crash-1",), ("crash-1", "fine")],
                         ids=["on the caller's thread", "in the pool"])
def test_a_crashing_backend_gets_the_same_answer_on_both_paths(
    service: MountService, caplog: pytest.LogCaptureFixture, names: tuple[str, ...]
) -> None:
    with caplog.at_level(logging.ERROR), pytest.raises(InternalError) as info:
        mount(service, attributes(*names))
    assert info.value.message == (
        "object #1 (testmem 'crash-1'): the provider failed unexpectedly (RuntimeError); "
        "see the provider's logs")
    assert "secret-material-must-not-leak" not in info.value.message
    assert any("unexpected error fetching object #1 (testmem 'crash-1')" in r.getMessage()
               and r.exc_info for r in caplog.records)


@pytest.mark.parametrize("names", [("a",), ("a", "b")],
                         ids=["on the caller's thread", "in the pool"])
def test_a_backend_raising_a_base_exception_gets_an_answer_on_both_paths(
    service: MountService, monkeypatch: pytest.MonkeyPatch, names: tuple[str, ...]
) -> None:
    """Not only Exception: a SystemExit raised by a plugin is an INTERNAL answer on both paths
    (the pool path's futures hold any BaseException)."""
    def exits(unit: object) -> None:
        raise SystemExit("secret-material-must-not-leak")

    monkeypatch.setattr(service.fetcher, "fetch", exits)
    with pytest.raises(InternalError) as info:
        mount(service, attributes(*names))
    assert "(SystemExit)" in info.value.message
    assert "secret-material-must-not-leak" not in info.value.message


def test_a_one_object_mount_still_stops_at_its_deadline(
    emulator: EmulatorHandle, service: MountService
) -> None:
    """The SDK call's timeouts follow the deadline: a slow upstream cannot hold the caller's
    thread past it (here 3 s of upstream latency against a 0.6 s deadline)."""
    emulator.set_faults(latency_ms=3000)
    started = time.monotonic()
    with pytest.raises(ProviderError) as info:
        mount(service, attributes("app/db-password", object_type="kms"), seconds=0.6)
    assert time.monotonic() - started < 1.5
    assert info.value.retryable or "deadline" in info.value.message
