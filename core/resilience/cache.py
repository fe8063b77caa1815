"""The value cache: fetched secret values, keyed by who fetched them and exactly what was asked.

Why it exists: since driver v1.6 every pod's volume is republished about once a minute, so without
a cache a node asks KMS for every object of every pod every minute (see
docs/rotation-and-caching.md). With it, a node makes at most one call per (identity, object) per
TTL, however many pods share that identity.

Rules that keep it safe:

- The key starts with the `IdentityKey` (what the cloud authorizes on), then the backend's
  objectType, the endpoint (logical host, dialled address and protocol), the region of the mount,
  the object name, the version selector (objectVersion, objectVersionLabel) and the backend's own
  object fields (`Backend.object_fields`, which may change what it returns). A value fetched by
  one identity is never returned for another, and two SecretProviderClasses that differ in any of
  these fields never share an entry.
- Values live in process memory only (the `SecretValue` bytes); nothing is written to disk, and
  keys hold no secret (IdentityKey keeps only a keyed digest of an AccessKey secret).
- The version stored is the upstream version returned with the value, so the version the driver
  sees only moves when upstream's current version moves.
- Bounded by entries and by bytes, evicting the least recently used entry first. A value larger
  than the byte bound is simply not cached.
- Errors are never cached (only `put` of a value exists).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from cachetools import TLRUCache

from ack_secrets_provider.core.mount.spec import ObjectSpec
from ack_secrets_provider.core.plugins.backend import Backend, FetchContext, SecretValue
from ack_secrets_provider.core.plugins.credentials import IdentityKey

__all__ = ["CacheKey", "ValueCache", "cache_key", "ENTRY_OVERHEAD"]

#: bytes charged per entry on top of the value (key, bookkeeping): keeps the byte bound honest
#: for many tiny values
ENTRY_OVERHEAD = 256


@dataclass(frozen=True)
class CacheKey:
    """Everything that decides which bytes an upstream call returns, and for whom."""

    identity: IdentityKey
    object_type: str
    host: str
    address: str
    protocol: str
    region: str | None
    object_name: str
    object_version: str | None
    object_version_label: str | None
    #: the backend's own object fields the object sets (name, value), sorted
    fields: tuple[tuple[str, str], ...] = ()

    @property
    def pinned(self) -> bool:
        """True when the selector names an immutable version (objectVersion)."""
        return self.object_version is not None


def cache_key(backend: Backend, spec: ObjectSpec, ctx: FetchContext) -> CacheKey:
    """The cache key of one object fetched by `backend` with the identity/endpoint of `ctx`."""
    return CacheKey(
        identity=ctx.identity.key,
        object_type=backend.object_type,
        host=ctx.endpoint.host,
        address=ctx.endpoint.address,
        protocol=ctx.endpoint.protocol,
        region=ctx.region,
        object_name=spec.object_name,
        object_version=spec.object_version,
        object_version_label=spec.object_version_label,
        fields=tuple(sorted(spec.fields.items())),
    )


@dataclass(frozen=True)
class _Entry:
    value: SecretValue
    ttl: float
    size: int


class _Entries(TLRUCache[CacheKey, _Entry]):
    """cachetools' LRU with per-entry expiry, bounded by bytes; counts bound evictions."""

    def __init__(self, max_bytes: int, clock: Callable[[], float]) -> None:
        super().__init__(maxsize=max_bytes, ttu=lambda _key, entry, now: now + entry.ttl,
                         timer=clock, getsizeof=lambda entry: entry.size)
        self.evictions = 0

    def popitem(self) -> tuple[CacheKey, _Entry]:
        """Drop the least recently used entry (cachetools calls this to respect the bound)."""
        self.evictions += 1
        return super().popitem()


class ValueCache:
    """A thread-safe LRU map CacheKey → SecretValue with per-entry expiry, bounded by entries
    and by bytes.

    `clock` is injectable (monotonic seconds) so tests check expiry without sleeping.
    """

    def __init__(
        self,
        *,
        max_entries: int,
        max_bytes: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1 or max_bytes < 1:
            raise ValueError("the value cache needs max_entries >= 1 and max_bytes >= 1")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._items = _Entries(max_bytes, clock)
        self._lock = threading.Lock()

    @property
    def evictions(self) -> int:
        """Entries dropped to respect the bounds (not counting expiry)."""
        return self._items.evictions

    @staticmethod
    def size_of(value: SecretValue) -> int:
        return len(value.data) + len(value.version) + ENTRY_OVERHEAD

    def get(self, key: CacheKey) -> SecretValue | None:
        """The fresh value under `key`, or None."""
        with self._lock:
            try:  # one lookup: cachetools' get() looks the key up twice (contains, then get)
                return self._items[key].value
            except KeyError:  # absent or expired
                return None

    def put(self, key: CacheKey, value: SecretValue, ttl: float) -> bool:
        """Store `value` for `ttl` seconds; False when not stored (ttl <= 0 or too large)."""
        size = self.size_of(value)
        with self._lock:
            self._items.pop(key, None)  # never leave an older value behind a newer fetch
            if ttl <= 0 or size > self.max_bytes:
                return False
            self._items[key] = _Entry(value, ttl, size)
            while len(self._items) > self.max_entries:
                self._items.popitem()
            return True

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        with self._lock:
            self._items.expire()
            return len(self._items)

    @property
    def bytes(self) -> int:
        """Bytes charged for the entries held now (values + versions + overhead)."""
        with self._lock:
            self._items.expire()
            return int(self._items.currsize)
