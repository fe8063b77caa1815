"""Reads a ServiceAccount's role annotation from the Kubernetes API, with a short-lived cache.

Pod-level RRSA needs `ack.alibabacloud.com/role-arn` from the pod's ServiceAccount. A rollout of
100 pods must not be 100 API calls: answers (including "no annotation") are cached for
`settings.serviceaccount_cache_ttl` seconds and concurrent lookups of one ServiceAccount share
one call. Only `GET /api/v1/namespaces/<ns>/serviceaccounts/<name>` is used (the chart's
ClusterRole grants `get` on `serviceaccounts`). The standard library's HTTP client is enough for
one GET; the provider's own ServiceAccount token is re-read on every call (kubelet rotates it).
"""

from __future__ import annotations

import json
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable

from cachetools import TTLCache

from ack_secrets_provider.core.cloud.answers import read_bounded
from ack_secrets_provider.core.cloud.kube import MAX_OBJECT_BYTES, in_cluster_url
from ack_secrets_provider.core.errors import (
    DeadlineExceeded,
    FailedPrecondition,
    PermissionDenied,
    Unavailable,
)
from ack_secrets_provider.core.resilience.deadline import Deadline
from ack_secrets_provider.core.settings import ProviderSettings

ROLE_ANNOTATION = "ack.alibabacloud.com/role-arn"
MAX_TIMEOUT = 5.0
#: ServiceAccount answers kept
MAX_CACHED = 10_000


class ServiceAccountReader:
    """Looks up ServiceAccount role annotations through one Kubernetes API server."""

    def __init__(
        self, base_url: str, *, token_file: str | None, ca_file: str | None, ttl: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token_file = token_file
        self.ca_file = ca_file
        #: answers ("no annotation" too) for `ttl` seconds, the least recently used dropped
        #: beyond MAX_CACHED
        self._cache: TTLCache[tuple[str, str], str | None] = TTLCache(
            maxsize=MAX_CACHED, ttl=ttl, timer=clock)
        self._lock = threading.Lock()
        self._key_locks: dict[tuple[str, str], threading.Lock] = {}

    def role_arn(self, namespace: str, name: str, deadline: Deadline) -> str | None:
        """The ServiceAccount's role annotation, or None when it has none."""
        key = (namespace, name)
        with self._lock:
            if key in self._cache:
                return self._cache[key]
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        # Concurrent lookups of one ServiceAccount wait for the first; when it fails each
        # waiter tries in turn, so every wait is bounded by the waiter's own deadline.
        if not key_lock.acquire(timeout=max(0.0, deadline.remaining())):
            raise DeadlineExceeded(
                f"reading serviceaccount {namespace}/{name}: the mount deadline passed while "
                "waiting for the same lookup already in progress; the Kubernetes API is slow"
            )
        try:
            with self._lock:
                if key in self._cache:
                    return self._cache[key]
            role = self._fetch(namespace, name, deadline)
            with self._lock:
                if self._cache.ttl > 0:
                    self._cache[key] = role
            return role
        finally:
            key_lock.release()
            with self._lock:
                if len(self._key_locks) > 10_000:  # bound: drop locks nobody holds
                    for stale in [k for k, lock in self._key_locks.items() if not lock.locked()]:
                        del self._key_locks[stale]

    def _context(self) -> ssl.SSLContext | None:
        if not self.base_url.startswith("https://"):
            return None
        return ssl.create_default_context(cafile=self.ca_file or None)

    def _fetch(self, namespace: str, name: str, deadline: Deadline) -> str | None:
        what = f"serviceaccount {namespace}/{name}"
        deadline.check(f"reading {what}")
        path = "/api/v1/namespaces/{}/serviceaccounts/{}".format(
            urllib.parse.quote(namespace, safe=""), urllib.parse.quote(name, safe="")
        )
        request = urllib.request.Request(self.base_url + path, method="GET")
        request.add_header("Accept", "application/json")
        if self.token_file:
            try:
                with open(self.token_file, encoding="utf-8") as handle:
                    request.add_header("Authorization", f"Bearer {handle.read().strip()}")
            except OSError as exc:
                raise FailedPrecondition(
                    f"reading {what}: the provider's ServiceAccount token "
                    f"{self.token_file} cannot be read ({exc.strerror}); the provider needs "
                    "automountServiceAccountToken and get on serviceaccounts (rbac.install)"
                ) from None
        timeout = max(0.1, min(MAX_TIMEOUT, deadline.remaining()))
        try:
            with urllib.request.urlopen(  # noqa: S310 - URL built from settings only
                request, timeout=timeout, context=self._context()
            ) as response:
                where = f"reading {what} from the Kubernetes API at {self.base_url}"
                body = json.loads(read_bounded(response, MAX_OBJECT_BYTES, where))
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                raise FailedPrecondition(
                    f"{what} does not exist in the Kubernetes API; pod-level RRSA needs the "
                    "pod's ServiceAccount with the annotation "
                    f"{ROLE_ANNOTATION}"
                ) from None
            if exc.code in (401, 403):
                raise PermissionDenied(
                    f"reading {what}: the Kubernetes API refused the provider (HTTP {exc.code}); "
                    "its ClusterRole needs get on serviceaccounts (Helm value rbac.install=true)"
                ) from None
            raise Unavailable(
                f"reading {what}: the Kubernetes API answered HTTP {exc.code}; try again later"
            ) from None
        except (OSError, ValueError) as exc:
            raise Unavailable(
                f"reading {what}: the Kubernetes API at {self.base_url} could not be reached "
                f"({type(exc).__name__}); try again later"
            ) from None
        metadata = body.get("metadata") if isinstance(body, dict) else None
        annotations = metadata.get("annotations") if isinstance(metadata, dict) else None
        role = annotations.get(ROLE_ANNOTATION) if isinstance(annotations, dict) else None
        return role.strip() if isinstance(role, str) and role.strip() else None


_readers: dict[tuple[str, str | None, str | None, float], ServiceAccountReader] = {}
_readers_lock = threading.Lock()


def reader_for(settings: ProviderSettings) -> ServiceAccountReader:
    """The shared reader for these settings (one cache per API server)."""
    base = settings.kube_api_url or in_cluster_url(settings.environ)
    if not base:
        raise FailedPrecondition(
            "pod-level RRSA reads the ServiceAccount's role annotation from the Kubernetes "
            "API, but the provider does not run in a cluster (KUBERNETES_SERVICE_HOST is "
            "unset) and no --kube-api-url is given"
        )
    key = (base, settings.kube_token_file, settings.kube_ca_file,
           settings.serviceaccount_cache_ttl)
    with _readers_lock:
        reader = _readers.get(key)
        if reader is None:
            reader = _readers[key] = ServiceAccountReader(
                base, token_file=settings.kube_token_file, ca_file=settings.kube_ca_file,
                ttl=settings.serviceaccount_cache_ttl,
            )
        return reader


def clear_readers() -> None:
    """Forget every reader and its cache (tests)."""
    with _readers_lock:
        _readers.clear()
