"""The HTTP transport under every Alibaba Cloud SDK call: bounded answers, exclusive private trust.

The sync SDK clients (darabonba-core 1.0.x) send each request with `session.send(...)` on a
`requests.Session` obtained from `DaraCore._get_session(...)`, which creates one session per
endpoint on first use and keeps it forever. `install` replaces that function, once per process,
by one that returns the provider's single session. Every KMS, OOS and STS call (and any plugin's
SDK call) therefore goes through `SdkAdapter`, which:

- reads an answer of at most `max_answer_bytes` (`--max-upstream-response-bytes`, decoded
  bytes): a larger Content-Length is refused before reading, a longer body as soon as the bound is
  crossed; the connection is closed, so memory stays bounded whatever the upstream sends;
- reads it within the call's read timeout in total (the timeouts follow the mount deadline), not
  per socket read: a server dripping bytes, of its body or of its status line and headers,
  cannot hold a mount past its deadline. The body is read here, a chunk at a time, against the
  clock; the status line and headers are read inside http.client, so `ExchangeWatchdog` shuts
  the connection's socket down when the exchange's time is up (within `WATCHDOG_TICK`), which
  ends any read blocked on it;
- refuses an answer that is not a JSON object (every KMS, OOS and STS answer is one): an HTML page
  or broken JSON is an `UnexpectedAnswer` from that endpoint, not a network failure; a 5xx or 429
  page that is not JSON (a load balancer's) stays a retryable `Unavailable`;
- verifies TLS with exactly the CA files a client was configured with (`Config(ca=...)`; several
  files joined by `os.pathsep`), intermediates accepted as anchors (VERIFY_X509_PARTIAL_CHAIN).
  requests would add its default bundle (certifi, or a distribution's system bundle) to any
  context it is given; this adapter never lets it, so a dedicated KMS gateway or an STS override
  with a configured CA trusts that CA only. Without a CA, the SDK's own trust is used (system
  roots + certifi). Verification is never disabled.

This is the one place that relies on darabonba's session detail. `install` fails loudly if the
SDK no longer has `DaraCore._get_session`; tests/test_upstream_answers.py proves every backend's
calls go through the bound.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import ssl
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cachetools import LRUCache
from requests import PreparedRequest, Response, Session
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from ack_secrets_provider.core.cloud.tls import partial_chain_context
from ack_secrets_provider.core.errors import PluginError, Unavailable, UnexpectedAnswer
from ack_secrets_provider.core.settings import ProviderSettings

__all__ = [
    "ExchangeWatchdog",
    "SdkAdapter",
    "ca_option",
    "install",
]

#: keep-alive connections per endpoint (as `MAX_IDLE_CONNS` of the clients) and endpoints pooled
POOL_MAXSIZE = 32
POOL_ENDPOINTS = 64
#: private trust contexts kept (one per distinct CA configuration)
MAX_CONTEXTS = 64
_CHUNK = 64 * 1024
_FLAG = "--max-upstream-response-bytes"
#: how often the watchdog looks at the exchanges in flight (it sleeps while there are none)
WATCHDOG_TICK = 0.1


class Exchange:
    """One request and its answer on one thread, which must end by `deadline` (monotonic)."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.expired = False
        self._socket: socket.socket | None = None
        self._lock = threading.Lock()

    def attach(self, sock: socket.socket | None) -> None:
        """The socket the answer is read from (shut down at once if the time is already up)."""
        with self._lock:
            self._socket = sock
            if self.expired:
                _shut(sock)

    def expire(self) -> None:
        with self._lock:
            self.expired = True
            _shut(self._socket)


def _shut(sock: socket.socket | None) -> None:
    """End every read blocked on `sock` (the plain socket call: ssl's would drop its state
    under the reading thread)."""
    if sock is not None:
        # already closed or disconnected: nothing left to end
        with contextlib.suppress(OSError):
            socket.socket.shutdown(sock, socket.SHUT_RDWR)


class ExchangeWatchdog:
    """Expires exchanges that outlive their deadline: one thread for the process, started on
    first use, waking every WATCHDOG_TICK only while an exchange is in flight.

    An exchange wakes the thread only when it sleeps with nothing to watch (`_idle`); while it
    ticks, a new exchange waits for the next tick. Waking it on every exchange that found none
    in flight (each call of a one-client load) cost a thread switch per SDK call: ~0.1 ms of
    the process's CPU (docs/performance.md).
    """

    def __init__(self) -> None:
        self._live: set[Exchange] = set()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._idle = False

    def start(self, deadline: float) -> Exchange:
        exchange = Exchange(deadline)
        with self._wake:
            self._live.add(exchange)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="exchange-watchdog",
                                                daemon=True)
                self._thread.start()
            elif self._idle:
                self._idle = False
                self._wake.notify()
        return exchange

    def finish(self, exchange: Exchange) -> None:
        with self._wake:
            self._live.discard(exchange)

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._live:
                    self._idle = True
                    self._wake.wait()
                self._idle = False
                # a tick, whatever starts or finishes meanwhile (nothing notifies a ticking thread)
                ends = time.monotonic() + WATCHDOG_TICK
                while (left := ends - time.monotonic()) > 0:
                    self._wake.wait(left)
                now = time.monotonic()
                due = [exchange for exchange in self._live if exchange.deadline <= now]
                self._live.difference_update(due)
            for exchange in due:
                exchange.expire()


#: the exchange the current thread is reading an SDK answer for (set by SdkAdapter.send)
_current = threading.local()


class _Watched:
    """Hands the connection's socket to the current thread's exchange before reading the head."""

    sock: socket.socket | None

    def getresponse(self) -> Any:
        exchange = getattr(_current, "exchange", None)
        if exchange is not None:
            exchange.attach(self.sock)
        return super().getresponse()  # type: ignore[misc]


class _WatchedHTTPConnection(_Watched, HTTPConnection):
    pass


class _WatchedHTTPSConnection(_Watched, HTTPSConnection):
    pass


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


_WATCHED_POOLS = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


def ca_option(ca_files: Sequence[str | Path]) -> str | None:
    """The `Config(ca=...)` value making the SDK trust exactly `ca_files` (None: default trust)."""
    return os.pathsep.join(str(p) for p in ca_files) if ca_files else None


def _default_context() -> ssl.SSLContext:
    """The SDK's own trust for public endpoints: the system roots plus certifi's."""
    import certifi

    context = ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_verify_locations(certifi.where())
    return context


def _endpoint(url: str) -> str:
    """`scheme://host:port` of a request: never its query (it holds signatures and tokens)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class SdkAdapter(HTTPAdapter):
    """A requests adapter that bounds answers and keeps private trust exclusive (see module)."""

    def __init__(self, max_answer_bytes: int) -> None:
        super().__init__(pool_connections=POOL_ENDPOINTS, pool_maxsize=POOL_MAXSIZE)
        self.max_answer_bytes = max_answer_bytes
        self._default: ssl.SSLContext | None = None
        self._contexts: LRUCache[str, ssl.SSLContext] = LRUCache(MAX_CONTEXTS)
        self._lock = threading.Lock()
        self.watchdog = ExchangeWatchdog()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _WATCHED_POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        manager.pool_classes_by_scheme = _WATCHED_POOLS
        return manager

    # -- trust --------------------------------------------------------------------------------

    def context_for(self, verify: object) -> ssl.SSLContext:
        """The context for a request's `verify`: True = default trust, a string = CA files."""
        if verify is True:
            with self._lock:
                if self._default is None:
                    self._default = _default_context()
                return self._default
        if not isinstance(verify, str) or not verify:
            raise PluginError(
                "an SDK client asked to disable TLS verification (ignore_ssl); the provider "
                "never does: remove that option"
            )
        with self._lock:
            context = self._contexts.get(verify)  # a hit counts as a use (LRU order)
            if context is None:
                context = partial_chain_context(verify.split(os.pathsep))
                self._contexts[verify] = context  # the least recently used beyond the bound goes
            return context

    def build_connection_pool_key_attributes(
        self, request: PreparedRequest, verify: bool | str, cert: Any = None
    ) -> Any:
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(
            request, verify, cert
        )
        if host_params["scheme"] == "https":
            # The trust is the context alone: no CA file for urllib3 to add to it.
            pool_kwargs.pop("ca_certs", None)
            pool_kwargs.pop("ca_cert_dir", None)
            pool_kwargs["cert_reqs"] = "CERT_REQUIRED"
            pool_kwargs["ssl_context"] = self.context_for(verify)
        return host_params, pool_kwargs

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        # requests' version points the pool at its default bundle (certifi), which urllib3 then
        # loads into the context: the trust would become private CA + every public root.
        if url.lower().startswith("https"):
            conn.cert_reqs = "CERT_REQUIRED"
            conn.ca_certs = None
            conn.ca_cert_dir = None

    # -- answers ------------------------------------------------------------------------------

    def send(
        self, request: PreparedRequest, stream: bool = False, timeout: Any = None,
        verify: bool | str = True, cert: Any = None, proxies: Mapping[str, str] | None = None,
    ) -> Response:
        started = time.monotonic()
        # the whole exchange, not each socket read, within the read timeout (which the backends
        # derive from the mount's deadline)
        read_timeout = timeout[1] if isinstance(timeout, tuple) else timeout
        exchange = (self.watchdog.start(started + read_timeout) if read_timeout is not None
                    else None)
        _current.exchange = exchange
        response: Response | None = None
        try:
            response = super().send(request, stream=True, timeout=timeout, verify=verify,
                                    cert=cert, proxies=proxies)
            body = self._read(response, started, read_timeout)
            _check_json(response.status_code, response.headers.get("content-type", ""), body,
                        _endpoint(request.url or ""))
        except BaseException:
            if response is not None:
                response.close()
            if exchange is not None and exchange.expired:  # the watchdog ended a blocked read
                raise _too_slow(_endpoint(request.url or ""), read_timeout) from None
            raise
        finally:
            _current.exchange = None
            if exchange is not None:
                self.watchdog.finish(exchange)
        response._content = body  # what `response.content` returns; the SDK reads that
        response._content_consumed = True  # type: ignore[attr-defined]
        return response

    def _read(self, response: Response, started: float, read_timeout: float | None) -> bytes:
        where = _endpoint(response.url or "")
        limit = self.max_answer_bytes
        declared = response.headers.get("content-length", "")
        # ASCII only: str.isdigit() accepts '²', which int() refuses (urllib3 ignores such a
        # length too)
        if declared.isascii() and declared.isdigit() and int(declared) > limit:
            raise _too_large(where, f"announced {int(declared):,} bytes", limit)
        chunks: list[bytes] = []
        total = 0
        # read1: whatever one socket read brings (a whole `read(n)` could wait for a dripping
        # server far past the time allowed); b"" only at the end of the body
        while chunk := response.raw.read1(_CHUNK, decode_content=True):
            total += len(chunk)
            if total > limit:
                raise _too_large(where, "sent more", limit)
            chunks.append(chunk)
            if read_timeout is not None and time.monotonic() - started > read_timeout:
                raise _too_slow(where, read_timeout)
        return b"".join(chunks)


def _too_slow(where: str, read_timeout: float | None) -> Unavailable:
    return Unavailable(
        f"endpoint {where} was still sending its answer after {read_timeout or 0:g}s (the read "
        "timeout, which follows the mount deadline); retried while the deadline allows"
    )


def _too_large(where: str, what: str, limit: int) -> UnexpectedAnswer:
    return UnexpectedAnswer(
        f"endpoint {where} answered with a body larger than {limit:,} bytes ({what}); no "
        "secret or credential answer is that large, so the answer was refused while reading. "
        f"Check the endpoint (an override or proxy pointing elsewhere?); the bound is {_FLAG}"
    )


#: the one content type under which tea-openapi parses an error answer as XML
_SDK_XML = "text/xml;charset=utf-8"


def _utf8(body: bytes) -> bool:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _check_json(status: int, content_type: str, body: bytes, where: str) -> None:
    """Refuse an answer that is not a JSON object, except an XML error document the SDK parses
    itself: only under exactly its content type (tea-openapi compares the header as a string),
    as UTF-8; any other XML it read as JSON and failed inside the call, an internal error."""
    if status >= 400 and content_type == _SDK_XML and _utf8(body):
        return
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):
        parsed = None
    if isinstance(parsed, dict):
        return
    shape = "an empty body" if not body.strip() else (
        f"a {content_type.split(';')[0].strip() or 'body'} that is not a JSON object")
    if status >= 500 or status == 429:
        raise Unavailable(
            f"endpoint {where} answered HTTP {status} with {shape} (an error page of a proxy or "
            "load balancer?); retried while the deadline allows"
        )
    raise UnexpectedAnswer(
        f"endpoint {where} answered HTTP {status} with {shape}; an Alibaba Cloud API endpoint "
        "always answers JSON: check that the endpoint (and any override or proxy) is the "
        "service's"
    )


_install_lock = threading.Lock()
_session: Session | None = None


def install(max_answer_bytes: int | None = None) -> SdkAdapter:
    """Route every sync SDK request of this process through the provider's adapter (idempotent).

    The bound is process-wide: a call with `max_answer_bytes` sets it (one provider process has
    one setting), None keeps the current one (the settings' default at first).
    """
    from darabonba.core import DaraCore

    global _session
    if max_answer_bytes is not None and max_answer_bytes < 1:
        raise ValueError("max_answer_bytes must be at least 1")
    with _install_lock:
        if _session is None:
            if not callable(getattr(DaraCore, "_get_session", None)):
                raise PluginError(
                    "darabonba-core no longer provides DaraCore._get_session: the provider "
                    "cannot bound upstream answers or pin private CAs with this SDK version; "
                    "install the darabonba-core version pinned in pyproject.toml"
                )
            session = Session()
            session.trust_env = False  # no proxy, netrc or CA surprises from the environment
            adapter = SdkAdapter(ProviderSettings.max_upstream_response_bytes)
            session.mount("https://", adapter)
            session.mount("http://", adapter)
            _session = session
            DaraCore._get_session = staticmethod(_provider_session)
        installed = _session.get_adapter("https://")
        assert isinstance(installed, SdkAdapter)
        if max_answer_bytes is not None:
            installed.max_answer_bytes = max_answer_bytes
        return installed


def _provider_session(*_args: Any, **_kwargs: Any) -> Session:
    """Replaces DaraCore._get_session: every endpoint shares the provider's session."""
    assert _session is not None
    return _session
