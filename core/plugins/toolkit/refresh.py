"""`RefreshingProvider`: a credentials provider that keeps one credential and refreshes it once
per lifetime, implementing alibabacloud-credentials' provider interface.

A credential plugin supplies `fetch(timeout) -> Issued` (an STS call, a metadata read, a file
read...) and wraps the provider in `alibabacloud_credentials.client.Client(provider=...)`; the
built-in credential plugins are built exactly this way.

Why not the library's own providers: alibabacloud-credentials 1.0.12 hard-codes https and the
metadata host, reads the OIDC token only from a file, uses the wall clock (no injectable clock for
tests) and considers a credential stale 15 minutes before expiry, so a 900 s session (the STS
minimum) is refreshed on *every* call. This provider keeps one credential per identity and
refreshes it once per lifetime: at `expiration - min(15 min, lifetime / 4)`.

Everything network-related lives in the `fetch` callable the plugin supplies; this class only
decides when to call it, serialises concurrent callers (one STS call for 100 concurrent mounts),
and keeps secrets out of repr().
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from alibabacloud_credentials_api import ICredentialsProvider

if TYPE_CHECKING:
    from alibabacloud_credentials.provider.refreshable import Credentials

from ack_secrets_provider.core.errors import DeadlineExceeded
from ack_secrets_provider.core.observability.metrics import ProviderMetrics
from ack_secrets_provider.core.resilience.deadline import Deadline
from ack_secrets_provider.core.resilience.deadline import current as current_deadline

log = logging.getLogger(__name__)

#: never refresh earlier than this before expiry (the library's own margin)
MAX_REFRESH_MARGIN = 15 * 60.0
#: a credential this close to expiry is not handed out even if a refresh failed
MIN_REMAINING = 30.0
#: seconds a credential that looks expired on arrival (clock skew) is used before a refresh
SKEW_REUSE = 30.0
#: longest refresh call (a mount's deadline shortens it)
DEFAULT_REFRESH_TIMEOUT = 10.0

Clock = Callable[[], float]


@dataclass(frozen=True)
class Issued:
    """One credential as an issuer returned it; `expiration` is epoch seconds (None: never)."""

    access_key_id: str
    access_key_secret: str = field(repr=False)
    security_token: str | None = field(default=None, repr=False)
    expiration: float | None = None


#: fetch(timeout_seconds) -> Issued; raises a ProviderError with a clear message on failure
Fetch = Callable[[float], Issued]


class RefreshingProvider(ICredentialsProvider):
    """Caches one issued credential and refreshes it shortly before it expires.

    Refreshes of temporary credentials are counted in `metrics` when given (the credential
    host's, `context.metrics`); a static credential needs none.
    """

    def __init__(self, name: str, fetch: Fetch, *, clock: Clock = time.time,
                 metrics: ProviderMetrics | None = None) -> None:
        self._name = name
        self._fetch = fetch
        self._clock = clock
        self._metrics = metrics
        self._lock = threading.Lock()
        self._current: Issued | None = None
        self._refresh_at = 0.0

    def __repr__(self) -> str:
        return f"RefreshingProvider({self._name!r})"

    def _needs_refresh(self, now: float) -> bool:
        return self._current is None or now >= self._refresh_at

    def ensure_fresh(self, deadline: Deadline | None = None) -> Issued:
        """Return a credential valid for a while, refreshing it first if its time has come.

        The refresh runs under `deadline` (the mount's) when given. If a refresh fails while the
        cached credential is still valid for more than MIN_REMAINING seconds, the cached one is
        used and the failure is logged: a brief STS outage does not fail mounts.
        """
        now = self._clock()
        current = self._current
        if current is not None and not self._needs_refresh(now):
            return current
        # Another caller may be refreshing (an STS call of up to DEFAULT_REFRESH_TIMEOUT):
        # wait for it only as long as this caller's deadline allows.
        wait = -1.0 if deadline is None else max(0.0, deadline.remaining())
        if not self._lock.acquire(timeout=wait):
            cached = self._current
            if cached is not None and (
                cached.expiration is None or cached.expiration - self._clock() > MIN_REMAINING
            ):
                return cached  # still valid: the refresh in progress will replace it
            raise DeadlineExceeded(
                f"the mount deadline passed while waiting for a refresh of the {self._name} "
                "credential already in progress; the STS or metadata service may be slow"
            )
        try:
            now = self._clock()
            if self._current is not None and not self._needs_refresh(now):
                return self._current
            timeout = DEFAULT_REFRESH_TIMEOUT
            if deadline is not None:
                deadline.check(f"refreshing the {self._name} credential")
                timeout = max(0.1, min(timeout, deadline.remaining()))
            try:
                issued = self._fetch(timeout)
            except Exception as exc:
                if self._metrics is not None:
                    self._metrics.record_credential_refresh(self._name, exc)
                cached = self._current
                if cached is not None and (
                    cached.expiration is None or cached.expiration - now > MIN_REMAINING
                ):
                    log.warning(
                        "refreshing the %s credential failed; using the cached one until "
                        "it nears expiry", self._name, exc_info=True,
                    )
                    return cached
                raise
            # a temporary credential (static ones never expire)
            if issued.expiration is not None and self._metrics is not None:
                self._metrics.record_credential_refresh(self._name)
            self._current = issued
            self._refresh_at = refresh_time(issued, self._clock())
            return issued
        finally:
            self._lock.release()

    def get_credentials(self) -> Credentials:
        # imported here: alibabacloud_credentials.provider pulls the whole SDK stack (~200 ms)
        from alibabacloud_credentials.provider.refreshable import Credentials

        # The SDK asks in the middle of a call: the mount's deadline (set by the fetcher around
        # the call) bounds the wait and the refresh, as for a refresh the mount asks for itself.
        issued = self.ensure_fresh(current_deadline())
        return Credentials(
            access_key_id=issued.access_key_id,
            access_key_secret=issued.access_key_secret,
            security_token=issued.security_token,
            expiration=int(issued.expiration) if issued.expiration is not None else None,
            provider_name=self._name,
        )

    async def get_credentials_async(self) -> Credentials:
        # The refresh blocks on I/O: keep it off the event loop of the SDK's async clients.
        return await asyncio.to_thread(self.get_credentials)

    def get_provider_name(self) -> str:
        return self._name


def refresh_time(issued: Issued, issued_at: float) -> float:
    """When to refresh: a quarter of the lifetime before expiry, at most 15 minutes before.

    A credential that looks expired on arrival means this node's clock is ahead of the issuer's
    (the issuer would not hand out an expired one): it is reused for SKEW_REUSE seconds rather
    than refreshed on every call.
    """
    if issued.expiration is None:
        return float("inf")
    lifetime = issued.expiration - issued_at
    if lifetime <= 0:
        return issued_at + SKEW_REUSE
    return issued.expiration - min(MAX_REFRESH_MARGIN, lifetime / 4)
