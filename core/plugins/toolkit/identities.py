"""Helpers a credential plugin needs to cache identities the way the built-ins do.

- `IdentityCache`: a bounded LRU of identities, each built once per cache key even when many
  mounts ask at the same time (single flight, bounded by the caller's deadline). A plugin keeps
  one and returns the same `Identity` for later mounts, so SDK clients are reused and temporary
  credentials refreshed once per lifetime.
- `secret_digest`: a keyed one-way digest of a secret, for `IdentityKey.secret_digest` when an
  AccessKey secret (or any secret) must tell two identities apart without being kept.
- `refreshing_identity`: an `Identity` whose credential client wraps a `RefreshingProvider`
  (refresh.py) around the plugin's `fetch`.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

from ack_secrets_provider.core.errors import DeadlineExceeded
from ack_secrets_provider.core.plugins.identity import Identity, IdentityKey
from ack_secrets_provider.core.plugins.toolkit.refresh import Clock, Fetch, RefreshingProvider
from ack_secrets_provider.core.resilience.deadline import Deadline

__all__ = ["IdentityCache", "refreshing_identity", "secret_digest"]

#: per-process key of `secret_digest` (digests are never comparable across processes)
_DIGEST_KEY = os.urandom(32)


def secret_digest(secret: str) -> str:
    """A keyed one-way digest of a secret, to tell identities with the same AccessKey id but
    different secrets apart (a wrong or rotated secret never shares a cache entry)."""
    return hmac.new(_DIGEST_KEY, secret.encode(), hashlib.sha256).hexdigest()[:32]


@dataclass
class _Build:
    """The lock of one key being built, and how many callers hold or wait for it."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    users: int = 0


class IdentityCache:
    """A bounded LRU of identities; entries are built under a per-key lock (single flight).

    A per-key lock lives only while callers build or wait for that key, so keys whose build
    failed (a pod's bad token, say) leave nothing behind.
    """

    def __init__(self, max_entries: int = 4096) -> None:
        self.max_entries = max_entries
        #: the clock every new refreshing provider uses (tests replace it to skip time)
        self.clock: Clock = time.time
        self._entries: OrderedDict[Hashable, Identity] = OrderedDict()
        self._lock = threading.Lock()
        self._building: dict[Hashable, _Build] = {}

    def get_or_create(
        self, cache_key: Hashable, build: Callable[[], Identity], deadline: Deadline | None = None
    ) -> Identity:
        """The cached identity, else `build()` once for all concurrent callers of the key.

        `deadline` bounds the wait for another caller's build (a build that does I/O, such as
        the node RAM role discovery, must not hold later mounts past their deadline).
        """
        with self._lock:
            found = self._entries.get(cache_key)
            if found is not None:
                self._entries.move_to_end(cache_key)
                return found
            building = self._building.setdefault(cache_key, _Build())
            building.users += 1
        try:
            return self._build_once(cache_key, build, building.lock, deadline)
        finally:
            with self._lock:
                building.users -= 1
                if building.users == 0 and self._building.get(cache_key) is building:
                    del self._building[cache_key]

    def _build_once(
        self, cache_key: Hashable, build: Callable[[], Identity], key_lock: threading.Lock,
        deadline: Deadline | None,
    ) -> Identity:
        if not key_lock.acquire(timeout=-1 if deadline is None else deadline.remaining()):
            raise DeadlineExceeded(
                "the mount deadline passed while waiting for the same credential to be set "
                "up by another mount; the STS or metadata service may be slow"
            )
        try:
            with self._lock:
                found = self._entries.get(cache_key)
                if found is not None:
                    return found
            identity = build()
            with self._lock:
                self._entries[cache_key] = identity
                while len(self._entries) > self.max_entries:
                    self._entries.popitem(last=False)
            return identity
        finally:
            key_lock.release()

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


def refreshing_identity(
    key: IdentityKey, name: str, fetch: Fetch, *, provider_level: bool, clock: Clock = time.time
) -> Identity:
    """An Identity whose credential client wraps a RefreshingProvider around `fetch`.

    `name` names the credential in logs and metrics (the plugin's mode); `clock` is the wall
    clock the refresh schedule follows.
    """
    provider = RefreshingProvider(name, fetch, clock=clock)
    from alibabacloud_credentials.client import Client as CredentialClient  # heavy: first use

    return Identity(key=key, credential=CredentialClient(provider=provider),
                    provider_level=provider_level)
