"""What a credential plugin receives and returns: the mount's context and the identity, and
the host's identity cache that keeps identities between mounts.

`IdentityKey` is what the cloud authorizes on; values, SDK clients and credentials are cached
under it. Kept apart from the plugin host (credentials.py) so the hook specifications
(hookspecs.py) can name these types without importing the host that loads them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from cachetools import LRUCache

from ack_secrets_provider.core.cloud.kube import KubeClient
from ack_secrets_provider.core.errors import DeadlineExceeded
from ack_secrets_provider.core.mount.spec import MountRequest
from ack_secrets_provider.core.observability.metrics import ProviderMetrics
from ack_secrets_provider.core.resilience.deadline import Deadline
from ack_secrets_provider.core.settings import ProviderSettings


@dataclass(frozen=True)
class IdentityKey:
    """What the cloud authorizes on. Values, clients and credentials are cached under it.

    Holds no secret: the AccessKey id is an identifier, not a secret (still shown truncated).
    """

    mode: str
    role_arn: str | None = None
    #: OIDC subject for pod-level RRSA: `namespace/serviceaccount`
    subject: str | None = None
    access_key_id: str | None = None
    cross_account_role: str | None = None
    #: keyed one-way digest of an AccessKey secret (never shown): a request that carries a
    #: known AccessKey id with a wrong secret must not share another identity's cached values
    secret_digest: str | None = field(default=None, repr=False)

    def describe(self) -> str:
        parts = [self.mode]
        if self.role_arn:
            parts.append(f"role {self.role_arn}")
        if self.subject:
            parts.append(f"serviceaccount {self.subject}")
        if self.access_key_id:
            parts.append(f"AccessKey {self.access_key_id[:6]}…")
        if self.cross_account_role:
            parts.append(f"assuming {self.cross_account_role}")
        return ", ".join(parts)


@dataclass(frozen=True)
class Identity:
    """A resolved identity: its key and an alibabacloud_credentials client to sign with.

    `credential` is an `alibabacloud_credentials.client.Client` built around an explicit
    provider (never the library's default chain). `provider_level` marks the provider's own
    identities (modes 2-6), which the namespace allow-list restricts.
    """

    key: IdentityKey
    credential: Any = field(repr=False, compare=False)
    provider_level: bool = True

    def describe(self) -> str:
        return self.key.describe()


@dataclass
class _Build:
    """The lock of one key being built, and how many callers hold or wait for it."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    users: int = 0


class IdentityCache:
    """The credential host's identities: a bounded LRU, each entry built once (single flight).

    An identity (its key, its refreshing credential, the SDK credential client around it) is
    built once per cache key and reused by every later mount, so its temporary credential is
    fetched once per lifetime. A plugin's cache key is the IdentityKey plus whatever else decides
    where and how the credential is fetched (the STS endpoint, a digest of an AccessKey secret).
    A per-key lock lives only while callers build or wait for that key, so keys whose build
    failed (a pod's bad token, say) leave nothing behind. `clock` (epoch seconds) is the clock
    the plugins' refreshing credentials use.
    """

    def __init__(self, max_entries: int = 4096, *, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._entries: LRUCache[Hashable, Identity] = LRUCache(max_entries)
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
            try:  # one lookup: cachetools' get() looks the key up (and hashes it) twice
                return self._entries[cache_key]
            except KeyError:
                pass
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
            return identity
        finally:
            key_lock.release()

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


@dataclass(frozen=True)
class CredentialContext:
    """One mount's request to the credential plugins (built by `CredentialHost.context`).

    `metrics` is where plugins record STS calls and credential refreshes; `identities` is the
    host's identity cache, in which plugins keep what they built for later mounts; `kube` reads
    the Kubernetes API as the provider (cached briefly).
    """

    request: MountRequest
    settings: ProviderSettings
    deadline: Deadline
    metrics: ProviderMetrics = field(repr=False)
    identities: IdentityCache = field(repr=False)
    #: the provider's Kubernetes API client, None outside a cluster
    kube: KubeClient | None = field(default=None, repr=False)
