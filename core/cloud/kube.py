"""The one Kubernetes API client: in-cluster configuration, JSON requests, cached reads.

The provider needs very little of the API (the Event sender creates Events; pod-level RRSA reads
ServiceAccounts), so the standard library's HTTP client is enough and no Kubernetes client library
is pulled in. The app builds one client and hands it to both. The ServiceAccount token is re-read
on every request because kubelet rotates it. Tests point `base_url` at a fake API server on
127.0.0.1 over plain http.

`get` serves reads from a short-lived cache (`read_cache_ttl`): a rollout of 100 pods of one
ServiceAccount is one API call, and concurrent reads of one path share one call, each waiting
no longer than its own deadline.
"""

from __future__ import annotations

import http.client
import json
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

from cachetools import TTLCache

from ack_secrets_provider.core.cloud.answers import read_bounded
from ack_secrets_provider.core.cloud.tls import ca_load_problem
from ack_secrets_provider.core.errors import DeadlineExceeded
from ack_secrets_provider.core.resilience.deadline import Deadline
from ack_secrets_provider.core.settings import ProviderSettings

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
#: most bytes of one Kubernetes API answer (etcd stores objects of at most 1.5 MiB)
MAX_OBJECT_BYTES = 4 * 1024 * 1024
#: characters read from a ServiceAccount token file (a token is a few kB): a file named by
#: mistake (/dev/zero, a log) is refused at this size instead of being read to the end
MAX_TOKEN_CHARS = 64 * 1024
DEFAULT_TOKEN_FILE = f"{SERVICE_ACCOUNT_DIR}/token"
DEFAULT_CA_FILE = f"{SERVICE_ACCOUNT_DIR}/ca.crt"
#: no single request waits longer than this, whatever the caller's deadline
MAX_TIMEOUT = 5.0
#: cached reads kept (least recently used dropped beyond)
MAX_CACHED = 10_000


class KubeError(Exception):
    """A Kubernetes API request failed; the message names the request, never the token.

    `status` is the HTTP status the API answered, None when it could not be reached.
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class KubeTokenError(KubeError):
    """The provider's own ServiceAccount token cannot be read or is empty (nothing was sent)."""


class KubeCaError(KubeError):
    """The CA bundle trusted for the Kubernetes API cannot be loaded, or does not vouch for the
    API server's certificate (nothing was sent)."""


class TokenFileProblem(Exception):
    """What is wrong with a token file: its text completes "the token file <path> ..."."""


def read_token_file(path: str) -> str:
    """The ServiceAccount token in `path`, read now (kubelet replaces a projected token's file
    when it rotates it). TokenFileProblem when the file cannot be read, or holds no token:
    empty, not UTF-8 (a binary named by mistake), larger than any token (/dev/zero or a log:
    only MAX_TOKEN_CHARS are read), or more than one word of ASCII (a kubeconfig or a note:
    http.client refused it as a header, which read "could not be reached", an outage)."""
    try:
        with open(path, encoding="utf-8") as handle:
            token = handle.read(MAX_TOKEN_CHARS + 1).strip()
    except OSError as exc:
        raise TokenFileProblem(f"cannot be read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise TokenFileProblem("is not a token (not UTF-8 text)") from None
    if not token:
        raise TokenFileProblem("is empty")
    if len(token) > MAX_TOKEN_CHARS:
        raise TokenFileProblem(f"is not a token (larger than {MAX_TOKEN_CHARS:,} characters)")
    if not (token.isascii() and token.isprintable()) or " " in token:
        raise TokenFileProblem("is not a token (a bearer token is one word of ASCII characters)")
    return token


_CA_FIX = ("the provider needs automountServiceAccountToken (which mounts ca.crt at the default "
           "path) or --kube-ca-file naming the API server's CA bundle")


def in_cluster_url(environ: Mapping[str, str]) -> str | None:
    """https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT, or None outside a cluster."""
    host = environ.get("KUBERNETES_SERVICE_HOST")
    if not host:
        return None
    port = environ.get("KUBERNETES_SERVICE_PORT", "443")
    host = f"[{host}]" if ":" in host else host
    return f"https://{host}:{port}"


class KubeClient:
    """One API server: its base URL, the bearer token file and the CA bundle to trust."""

    def __init__(
        self, base_url: str, *, token_file: str | None = DEFAULT_TOKEN_FILE,
        ca_file: str | None = DEFAULT_CA_FILE, read_cache_ttl: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token_file = token_file
        self.ca_file = ca_file
        self._reads: TTLCache[str, Any] = TTLCache(
            maxsize=MAX_CACHED, ttl=max(read_cache_ttl, 1e-9), timer=clock)
        self._caching = read_cache_ttl > 0
        self._lock = threading.Lock()
        self._path_locks: dict[str, threading.Lock] = {}

    @classmethod
    def from_settings(cls, settings: ProviderSettings) -> KubeClient | None:
        """`settings.kube_api_url`, else the in-cluster API server; None when neither exists."""
        url = settings.kube_api_url or in_cluster_url(settings.environ)
        if not url:
            return None
        return cls(url, token_file=settings.kube_token_file, ca_file=settings.kube_ca_file,
                   read_cache_ttl=settings.serviceaccount_cache_ttl)

    def _ssl_context(self) -> ssl.SSLContext | None:
        if not self.base_url.startswith("https://"):
            return None
        try:
            return ssl.create_default_context(cafile=self.ca_file or None)
        except OSError as exc:  # missing, unreadable, or no PEM certificate (ssl.SSLError)
            # Not an outage: without this it read "could not be reached; try again later".
            raise KubeCaError(
                f"the Kubernetes API's CA bundle {self._ca_setting()} cannot be loaded "
                f"({ca_load_problem(exc)}); {_CA_FIX}"
            ) from None

    def _ca_setting(self) -> str:
        return f"{self.ca_file} (--kube-ca-file)" if self.ca_file else "the system's CA store"

    def _token(self) -> str | None:
        if not self.token_file:
            return None
        try:
            return read_token_file(self.token_file)
        except TokenFileProblem as problem:
            raise KubeTokenError(
                f"the provider's ServiceAccount token {self.token_file} (--kube-token-file) "
                f"{problem}; the provider needs automountServiceAccountToken, or "
                "--kube-token-file naming a ServiceAccount token"
            ) from None

    def request(
        self, method: str, path: str, body: Any = None, *, timeout: float = MAX_TIMEOUT
    ) -> Any:
        """Send one JSON request; returns the decoded answer. Raises KubeError when the request
        fails, UnexpectedAnswer (a ProviderError) when the answer is larger than any object."""
        data = None if body is None else json.dumps(body).encode("utf-8")
        req = urllib.request.Request(self.base_url + path, data=data, method=method)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        token = self._token()
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        what = f"{method} {path}"
        try:
            with urllib.request.urlopen(  # noqa: S310 - URL from settings, never from requests
                req, timeout=max(0.1, min(MAX_TIMEOUT, timeout)), context=self._ssl_context()
            ) as response:
                # an answer over the bound raises UnexpectedAnswer, naming the request
                raw = read_bounded(response, MAX_OBJECT_BYTES,
                                   f"{what} at the Kubernetes API {self.base_url}")
        except urllib.error.HTTPError as exc:
            hint = (" (the provider's ClusterRole lacks this permission: Helm rbac.install)"
                    if exc.code in (401, 403) else "")
            raise KubeError(f"{what}: the Kubernetes API answered HTTP {exc.code}{hint}",
                            exc.code) from None
        except (OSError, ValueError, http.client.HTTPException) as exc:
            # HTTPException is no OSError: an answer that is not HTTP, or cut (IncompleteRead)
            cause = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            if isinstance(cause, ssl.SSLCertVerificationError):
                # the trust configured, not an outage ("could not be reached; try again later")
                raise KubeCaError(
                    f"the Kubernetes API at {self.base_url} presented a certificate that "
                    f"{self._ca_setting()} does not vouch for ({cause.verify_message}); "
                    f"{_CA_FIX}, and --kube-api-url a name the certificate is for"
                ) from None
            raise KubeError(
                f"{what}: the Kubernetes API at {self.base_url} could not be reached "
                f"({type(exc).__name__})"
            ) from None
        if not raw:
            return None
        try:
            return json.loads(raw.decode("utf-8"))
        except (ValueError, RecursionError):
            return None

    def get(self, path: str, deadline: Deadline, what: str) -> Any:
        """GET `path`, from the read cache when fresh; concurrent reads of a path share one
        call. `what` names the read in a DeadlineExceeded. Raises like `request`."""
        with self._lock:
            if path in self._reads:
                return self._reads[path]
            path_lock = self._path_locks.setdefault(path, threading.Lock())
        # Concurrent reads wait for the first; when it fails each waiter tries in turn, so every
        # wait is bounded by the waiter's own deadline.
        if not path_lock.acquire(timeout=max(0.0, deadline.remaining())):
            raise DeadlineExceeded(
                f"{what}: the mount deadline passed while waiting for the same Kubernetes API "
                "read already in progress; the Kubernetes API is slow"
            )
        try:
            with self._lock:
                if path in self._reads:
                    return self._reads[path]
            deadline.check(what)
            answer = self.request("GET", path, timeout=deadline.remaining())
            if self._caching:
                with self._lock:
                    self._reads[path] = answer
            return answer
        finally:
            path_lock.release()
            with self._lock:
                if len(self._path_locks) > MAX_CACHED:  # bound: drop locks nobody holds
                    for stale in [k for k, lock in self._path_locks.items() if not lock.locked()]:
                        del self._path_locks[stale]
