"""SDK clients: one per (endpoint address + protocol + CA, identity), shared across mounts/threads.

The sync Alibaba SDK clients are thread-safe and keep pooled keep-alive connections, so the
provider builds one per key and reuses it; rebuilding per mount would re-do TLS handshakes and
credential wiring every time. `ClientCache` is a small LRU-bounded map with a factory; `ClientKey`
is the key; `openapi_config` builds the tea-openapi `Config` every client must use: an explicit
endpoint and protocol (a Config without an endpoint silently targets `kms.<region>.aliyuncs.com`),
an explicit credential, and no SDK retries (core/resilience/retry.py owns retries).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from cachetools import LRUCache

from ack_secrets_provider.core.cloud.endpoints import Endpoint
from ack_secrets_provider.core.plugins.credentials import Identity, IdentityKey

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

__all__ = ["ClientCache", "ClientKey", "openapi_config", "USER_AGENT", "MAX_IDLE_CONNS"]

USER_AGENT = "ack-secrets-provider"
#: keep-alive connections pooled per endpoint (the SDK's default is 40)
MAX_IDLE_CONNS = 32


@dataclass(frozen=True)
class ClientKey:
    """What makes two SDK clients different: where they dial, what they trust, who signs."""

    service: str
    address: str
    protocol: str
    identity: IdentityKey
    #: CA files trusted for this endpoint (private gateways), () for the default trust
    ca_files: tuple[str, ...] = ()


class ClientCache(Generic[K, V]):
    """A thread-safe, LRU-bounded cache of clients, each built by `create()` on first use.

    `create` runs under the cache lock: building an SDK client is cheap (no I/O) and this
    guarantees one client per key even when many mounts start together.
    """

    def __init__(self, *, max_entries: int = 256) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._items: LRUCache[K, tuple[V, object]] = LRUCache(maxsize=max_entries)
        self._lock = threading.Lock()

    def get(self, key: K, create: Callable[[], V], *, owner: object = None) -> V:
        """The client for `key`, creating it with `create()` if absent (evicting the LRU one).

        `owner` is the object the client was built around (the identity's credential client):
        when a later call brings a different one under the same key (a credential plugin that
        built a new credential, e.g. after a secret rotation), the client is rebuilt, so a
        cached client never signs with a credential the caller no longer uses.
        """
        with self._lock:
            entry = self._items.get(key)  # a hit counts as a use (LRU order)
            if entry is not None and entry[1] is owner:
                return entry[0]
            client = create()
            self._items[key] = (client, owner)  # evicts the least recently used beyond the bound
            return client

    def invalidate(self, key: K) -> None:
        """Forget one client (e.g. after its credential was rejected)."""
        with self._lock:
            self._items.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._items


def openapi_config(
    endpoint: Endpoint, identity: Identity, *, region: str | None = None,
    ca_files: Sequence[str] = (), max_answer_bytes: int | None = None,
) -> Any:
    """The tea-openapi Config for one client: explicit endpoint, protocol and credential.

    Retries are left off (the SDK default; `RetryOptions` unset) so each call is one attempt.
    Timeouts are set per call through `RuntimeOptions` from the remaining deadline. The client's
    calls go through core/cloud/transport.py (installed here): answers bounded to
    `max_answer_bytes` (None: the process's current bound), and with `ca_files` TLS trusts exactly
    those CA files.
    """
    from alibabacloud_tea_openapi.utils_models import Config

    from ack_secrets_provider.core.cloud import transport

    transport.install(max_answer_bytes)
    return Config(
        credential=identity.credential,
        endpoint=endpoint.address,
        protocol=endpoint.protocol,
        region_id=region,
        user_agent=USER_AGENT,
        max_idle_conns=MAX_IDLE_CONNS,
        ca=transport.ca_option(ca_files),
    )
