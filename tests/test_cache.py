"""The value cache: keys, TTL expiry (injected clock), bounds and LRU eviction."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ack_secrets_provider.core.cloud.endpoints import Endpoint
from ack_secrets_provider.core.mount.spec import parse_mount_request
from ack_secrets_provider.core.plugins.backend import FetchContext, SecretValue
from ack_secrets_provider.core.plugins.credentials import Identity, IdentityKey
from ack_secrets_provider.core.resilience.cache import (
    ENTRY_OVERHEAD,
    CacheKey,
    ValueCache,
    cache_key,
)
from ack_secrets_provider.core.resilience.deadline import Deadline
from ack_secrets_provider.core.server.driver_client import driver_attributes
from ack_secrets_provider.core.settings import ProviderSettings

ALICE = IdentityKey(mode="pod-rrsa", role_arn="acs:ram::1:role/a", subject="ns/alice")
BOB = IdentityKey(mode="pod-rrsa", role_arn="acs:ram::1:role/b", subject="ns/bob")


def key(name: str = "app/db", identity: IdentityKey = ALICE, **changes: object) -> CacheKey:
    base = CacheKey(identity=identity, object_type="kms", host="kms-vpc.cn-hangzhou.aliyuncs.com",
                    address="127.0.0.1:1", protocol="http", region="cn-hangzhou",
                    object_name=name, object_version=None, object_version_label=None)
    return replace(base, **changes)  # type: ignore[arg-type]


def value(data: bytes = b"secret", version: str = "v1") -> SecretValue:
    return SecretValue(data, version)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_value_is_fresh_for_its_ttl_then_gone() -> None:
    clock = Clock()
    cache = ValueCache(max_entries=10, max_bytes=10_000, clock=clock)
    assert cache.put(key(), value(), ttl=60)
    clock.now += 59.999
    assert cache.get(key()) == value()
    clock.now += 0.001
    assert cache.get(key()) is None
    assert len(cache) == 0 and cache.bytes == 0


def test_ttl_zero_stores_nothing_and_drops_an_older_value() -> None:
    cache = ValueCache(max_entries=10, max_bytes=10_000)
    cache.put(key(), value(b"old"), ttl=60)
    assert not cache.put(key(), value(b"new"), ttl=0)
    assert cache.get(key()) is None


def test_identity_and_every_selector_field_separate_entries() -> None:
    cache = ValueCache(max_entries=100, max_bytes=100_000)
    cache.put(key(), value(b"alice's"), ttl=60)
    variants = [
        key(identity=BOB), key(identity=replace(ALICE, cross_account_role="acs:ram::2:role/x")),
        key(object_type="oos"), key(host="kms.example"), key(address="127.0.0.1:2"),
        key(protocol="https"), key(region="cn-shanghai"), key(name="app/other"),
        key(object_version="v1"), key(object_version_label="ACSPrevious"),
        key(fields=(("listFormat", "json"),)),  # a backend's own field may change the value
    ]
    for variant in variants:
        assert cache.get(variant) is None, variant
    assert cache.get(key()) == value(b"alice's")


def test_entry_bound_evicts_least_recently_used() -> None:
    cache = ValueCache(max_entries=3, max_bytes=1_000_000)
    for name in "abc":
        cache.put(key(name), value(name.encode()), ttl=60)
    assert cache.get(key("a"))  # a is now the most recently used
    cache.put(key("d"), value(b"d"), ttl=60)
    assert cache.get(key("b")) is None
    assert [cache.get(key(n)) is not None for n in "acd"] == [True, True, True]
    assert len(cache) == 3 and cache.evictions == 1


def test_byte_bound_counts_values_and_overhead() -> None:
    size = ValueCache.size_of(value(b"x" * 1000))
    assert size == 1000 + 2 + ENTRY_OVERHEAD
    cache = ValueCache(max_entries=1000, max_bytes=size * 3)
    for name in "abcd":
        cache.put(key(name), value(b"x" * 1000), ttl=60)
    assert len(cache) == 3 and cache.bytes == size * 3
    assert cache.get(key("a")) is None
    # A value larger than the whole bound is not cached and evicts nothing.
    assert not cache.put(key("huge"), value(b"x" * size * 3), ttl=60)
    assert len(cache) == 3


def test_replacing_a_value_keeps_the_byte_count_right() -> None:
    cache = ValueCache(max_entries=10, max_bytes=100_000)
    cache.put(key(), value(b"x" * 100), ttl=60)
    cache.put(key(), value(b"x" * 10), ttl=60)
    assert cache.bytes == ValueCache.size_of(value(b"x" * 10))
    assert not cache.put(key(), value(b"x"), ttl=0)  # not stored, and the older value dropped
    assert cache.bytes == 0 and cache.get(key()) is None


def test_bounds_must_be_positive() -> None:
    with pytest.raises(ValueError):
        ValueCache(max_entries=0, max_bytes=1)


def test_cache_key_comes_from_the_spec_the_identity_and_the_endpoint() -> None:
    attrs = driver_attributes({"objects": (
        "- objectName: app/db\n  objectType: kms\n  objectVersionLabel: ACSPrevious\n"
        "  objectAlias: db\n")})
    request = parse_mount_request(attrs, "null", '"420"', default_region="cn-hangzhou")
    spec = request.objects[0]
    endpoint = Endpoint("kms", "kms-vpc.cn-hangzhou.aliyuncs.com", "127.0.0.1:9", "http", True)
    ctx = FetchContext(Identity(BOB, None), Deadline.after(5), endpoint, ProviderSettings(),
                       region="cn-hangzhou")

    class Kms:
        object_type = "kms"

    got = cache_key(Kms(), spec, ctx)  # type: ignore[arg-type]
    assert got == CacheKey(BOB, "kms", "kms-vpc.cn-hangzhou.aliyuncs.com", "127.0.0.1:9", "http",
                           "cn-hangzhou", "app/db", None, "ACSPrevious")
    assert not got.pinned and replace(got, object_version="v1").pinned


def test_the_defaults_rotation_and_caching_md_states() -> None:
    """`serve` with no flags: TTL 60 s, pinned versions 1 h, 10,000 entries, 64 MiB with 256
    bytes per entry; `--no-cache` is a TTL of 0; 32 calls in flight per endpoint, 10 objects
    at once per mount; retries from 0.1 s to 5 s, 8 attempts, a budget of 20 refunded 0.5."""
    from ack_secrets_provider.core.cli import build_parser, build_settings

    def serve(*flags: str) -> ProviderSettings:
        return build_settings(build_parser().parse_args(["serve", *flags]), {})

    settings = serve()
    assert (settings.cache_ttl, settings.cache_pinned_ttl) == (60, 3600)
    assert (settings.cache_max_entries, settings.cache_max_bytes) == (10_000, 64 * 1024 * 1024)
    assert ENTRY_OVERHEAD == 256
    assert serve("--no-cache").cache_ttl == 0
    assert (settings.endpoint_concurrency, settings.fetch_concurrency) == (32, 10)
    retry = settings.retry
    assert (retry.base_delay, retry.max_delay, retry.max_attempts) == (0.1, 5.0, 8)
    assert (retry.budget_tokens, retry.budget_refund) == (20, 0.5)
