"""Fully cached mounts are answered on the caller's (gRPC handler) thread, without the fetch
pool: the same files and versions as the pool path, only fresh entries, only the caller's own
identity's entries."""

from __future__ import annotations

import json
from collections.abc import Iterator
from types import MappingProxyType

import pytest
from installed import SERVICES

from ack_secrets_provider.backends.kms.emulator import put_secret_version
from ack_secrets_provider.core.cloud.endpoints import EndpointOverrides
from ack_secrets_provider.core.emulator.testing import (
    ACCESS_KEY_ID,
    ACCESS_KEY_SECRET,
    LIMITED_ACCESS_KEY_ID,
    LIMITED_ACCESS_KEY_SECRET,
    EmulatorHandle,
)
from ack_secrets_provider.core.errors import PermissionDenied
from ack_secrets_provider.core.mount.service import MountOutcome, MountService
from ack_secrets_provider.core.resilience.deadline import Deadline
from ack_secrets_provider.core.resilience.fetcher import Fetcher
from ack_secrets_provider.core.server.app import load_plugins
from ack_secrets_provider.core.server.driver_client import driver_attributes
from ack_secrets_provider.core.settings import ProviderSettings

TTL = 60.0
OBJECTS = driver_attributes({"objects": (
    "- objectName: app/db-password\n  objectType: kms\n"
    "- objectName: app/config\n  objectType: kms\n  objectAlias: config\n"
    "- objectName: app-token\n  objectType: oos\n"
)})


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def service(emulator: EmulatorHandle, clock: Clock) -> Iterator[MountService]:
    settings = ProviderSettings(
        region="cn-hangzhou",
        endpoint_overrides=EndpointOverrides.parse(
            [f"kms={emulator.http_url}", f"oos={emulator.http_url}"], SERVICES),
        environ=MappingProxyType({}), cache_ttl=TTL,
    )
    backends, credentials = load_plugins(settings, autoload_third_party=False)
    svc = MountService(settings, backends, credentials,
                       Fetcher(settings, metrics=credentials.metrics, clock=clock))
    yield svc
    svc.close()
    backends.close()


def secrets(key_id: str = ACCESS_KEY_ID, secret: str = ACCESS_KEY_SECRET) -> str:
    return json.dumps({"access_key": key_id, "access_secret": secret})


def mount(svc: MountService, key: str | None = None) -> MountOutcome:
    keys = secrets(LIMITED_ACCESS_KEY_ID, LIMITED_ACCESS_KEY_SECRET) if key else secrets()
    return svc.mount(OBJECTS, keys, '"420"', Deadline.after(20))


def upstream_calls(emulator: EmulatorHandle) -> int:
    by_service = emulator.counters()["by_service"]
    return int(by_service.get("kms", 0)) + int(by_service.get("oos", 0))


def close_the_pool(svc: MountService) -> None:
    """From here on, a mount that needs the fetch pool fails (the pool refuses new work)."""
    svc.close()


def test_a_fully_cached_mount_returns_what_the_pool_path_returned_without_the_pool(
    emulator: EmulatorHandle, service: MountService
) -> None:
    first = mount(service)  # fetched in the pool
    calls = upstream_calls(emulator)
    close_the_pool(service)
    again = mount(service)  # answered from the cache on this thread
    assert again.files == first.files
    assert [(f.path, f.contents, f.version) for f in again.files] == [
        (f.path, f.contents, f.version) for f in first.files]
    assert upstream_calls(emulator) == calls


def test_an_expired_entry_is_not_served_it_is_fetched_again(
    emulator: EmulatorHandle, service: MountService, clock: Clock
) -> None:
    mount(service)
    put_secret_version(emulator, "app/db-password", "rotated-password")
    clock.now += TTL - 1
    assert {f.path: f.contents for f in mount(service).files}["app_db-password"] != (
        b"rotated-password")  # still fresh: the cached value
    calls = upstream_calls(emulator)
    clock.now += 2  # past the TTL
    files = {f.path: f.contents for f in mount(service).files}
    assert files["app_db-password"] == b"rotated-password"
    assert upstream_calls(emulator) > calls
    close_the_pool(service)  # the fresh values are hits again, with no pool
    assert {f.path: f.contents for f in mount(service).files} == files


def test_another_identity_never_gets_the_cached_values(
    emulator: EmulatorHandle, service: MountService
) -> None:
    mount(service)  # the full identity caches every object
    calls = upstream_calls(emulator)
    # The limited identity may read these objects too, but it never was served from the full
    # identity's entries: its own mount goes upstream.
    limited = mount(service, key="limited")
    assert upstream_calls(emulator) > calls
    close_the_pool(service)
    assert mount(service, key="limited").files == limited.files
    assert mount(service).files


def test_a_denied_identity_is_refused_even_when_another_identity_has_it_cached(
    emulator: EmulatorHandle, service: MountService
) -> None:
    mount(service)
    attributes = driver_attributes({"objects": "- objectName: other/secret\n  objectType: kms\n"})
    service.mount(attributes, secrets(), '"420"', Deadline.after(20))
    with pytest.raises(PermissionDenied):
        service.mount(attributes, secrets(LIMITED_ACCESS_KEY_ID, LIMITED_ACCESS_KEY_SECRET),
                      '"420"', Deadline.after(20))
