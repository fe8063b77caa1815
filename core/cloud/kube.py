"""A minimal Kubernetes API client: in-cluster configuration and one JSON request.

The provider needs very little of the API (create Events; auth reads ServiceAccounts), so the
standard library's HTTP client is enough and no Kubernetes client library is pulled in. The
ServiceAccount token is re-read on every request because kubelet rotates it. Tests point
`base_url` at a fake API server on 127.0.0.1 over plain http.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ack_secrets_provider.core.cloud.answers import read_bounded
from ack_secrets_provider.core.errors import UnexpectedAnswer

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
#: most bytes of one Kubernetes API answer (etcd stores objects of at most 1.5 MiB)
MAX_OBJECT_BYTES = 4 * 1024 * 1024
DEFAULT_TOKEN_FILE = f"{SERVICE_ACCOUNT_DIR}/token"
DEFAULT_CA_FILE = f"{SERVICE_ACCOUNT_DIR}/ca.crt"


class KubeError(Exception):
    """A Kubernetes API request failed; the message names the request, never the token."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def in_cluster_url(environ: Mapping[str, str]) -> str | None:
    """https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT, or None outside a cluster."""
    host = environ.get("KUBERNETES_SERVICE_HOST")
    if not host:
        return None
    port = environ.get("KUBERNETES_SERVICE_PORT", "443")
    host = f"[{host}]" if ":" in host else host
    return f"https://{host}:{port}"


@dataclass(frozen=True)
class KubeClient:
    """One API server: its base URL, the bearer token file and the CA bundle to trust."""

    base_url: str
    token_file: str | None = DEFAULT_TOKEN_FILE
    ca_file: str | None = DEFAULT_CA_FILE
    timeout: float = 5.0

    @classmethod
    def from_settings(
        cls, base_url: str | None, environ: Mapping[str, str], *,
        token_file: str | None = DEFAULT_TOKEN_FILE, ca_file: str | None = DEFAULT_CA_FILE,
    ) -> KubeClient | None:
        """The explicit `base_url`, else the in-cluster API server; None when neither exists."""
        url = base_url or in_cluster_url(environ)
        if not url:
            return None
        return cls(url.rstrip("/"), token_file=token_file, ca_file=ca_file)

    def _ssl_context(self) -> ssl.SSLContext | None:
        if not self.base_url.startswith("https://"):
            return None
        return ssl.create_default_context(cafile=self.ca_file or None)

    def _token(self) -> str | None:
        if not self.token_file:
            return None
        try:
            with open(self.token_file, encoding="utf-8") as handle:
                return handle.read().strip() or None
        except OSError as exc:
            raise KubeError(
                f"the provider's ServiceAccount token {self.token_file} cannot be read "
                f"({exc.strerror}); the DaemonSet needs automountServiceAccountToken"
            ) from None

    def request(
        self, method: str, path: str, body: Any = None, *, timeout: float | None = None
    ) -> Any:
        """Send one JSON request; returns the decoded answer, raises KubeError on failure."""
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
                req, timeout=timeout or self.timeout, context=self._ssl_context()
            ) as response:
                raw = read_bounded(response, MAX_OBJECT_BYTES,
                                   f"{what} at the Kubernetes API {self.base_url}")
        except UnexpectedAnswer as exc:
            raise KubeError(exc.message, None) from None
        except urllib.error.HTTPError as exc:
            hint = (" (the provider's ClusterRole lacks this permission: Helm rbac.install)"
                    if exc.code in (401, 403) else "")
            raise KubeError(f"{what}: the Kubernetes API answered HTTP {exc.code}{hint}",
                            exc.code) from None
        except (OSError, ValueError) as exc:
            raise KubeError(
                f"{what}: the Kubernetes API at {self.base_url} could not be reached "
                f"({type(exc).__name__})"
            ) from None
        if not raw:
            return None
        try:
            return json.loads(raw.decode("utf-8"))
        except ValueError:
            return None
