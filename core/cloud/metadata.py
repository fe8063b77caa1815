"""A small client of the ECS instance metadata service (IMDSv2 first, IMDSv1 as configured).

Used by the ECS RAM role credential plugin and by start-up region discovery. The base URL is
`http://100.100.100.200` unless the `metadata` endpoint override points elsewhere (the emulator
in tests and walkthroughs); the Alibaba credentials library hard-codes the host, hence this client.
"""

from __future__ import annotations

import http.client
import ssl
import urllib.error
import urllib.request

from ack_secrets_provider.core.cloud.answers import read_bounded
from ack_secrets_provider.core.cloud.tls import ca_load_problem
from ack_secrets_provider.core.errors import FailedPrecondition, UnexpectedAnswer
from ack_secrets_provider.core.settings import ProviderSettings

METADATA_HOST = "100.100.100.200"
TOKEN_PATH = "/latest/api/token"
TOKEN_TTL_HEADER = "X-aliyun-ecs-metadata-token-ttl-seconds"
TOKEN_HEADER = "X-aliyun-ecs-metadata-token"
TOKEN_TTL = 21600
MAX_TIMEOUT = 5.0
#: a credential answer is about 1 KB, a region-id a few bytes
MAX_ANSWER_BYTES = 64 * 1024


def metadata_base_url(settings: ProviderSettings) -> str:
    endpoint = settings.endpoint_overrides.resolve("metadata", METADATA_HOST)
    return endpoint.url if endpoint.overridden else f"http://{METADATA_HOST}"


def _tls_context(base_url: str, ca_file: str | None) -> ssl.SSLContext | None:
    """The trust of an https metadata endpoint override: the system's plus --sts-ca-file."""
    if not base_url.startswith("https://"):
        return None
    try:
        return ssl.create_default_context(cafile=ca_file)
    except OSError as exc:  # missing, unreadable, or no PEM certificate (ssl.SSLError)
        # the provider's configuration: it surfaced as a bare SSLError (a crash at start-up)
        where = f"{ca_file} (--sts-ca-file)" if ca_file else "the system's CA store"
        raise FailedPrecondition(
            f"the CA bundle {where} trusted for the instance metadata service at {base_url} "
            f"cannot be loaded ({ca_load_problem(exc)}); an https metadata endpoint override "
            "is trusted with --sts-ca-file: point it at a readable PEM file holding the "
            "override's CA"
        ) from None


class MetadataClient:
    """GETs from the instance metadata service, with an IMDSv2 token when it gives one."""

    def __init__(self, base_url: str, *, v1_fallback: bool, ca_file: str | None) -> None:
        self.base_url = base_url.rstrip("/")
        self.v1_fallback = v1_fallback
        self._context = _tls_context(self.base_url, ca_file)

    def _open(self, request: urllib.request.Request, timeout: float) -> str:
        where = f"the instance metadata service at {self.base_url}"
        try:
            with urllib.request.urlopen(  # noqa: S310 - URL built from settings only
                request, timeout=max(0.1, min(MAX_TIMEOUT, timeout)), context=self._context
            ) as response:
                body = read_bounded(response, MAX_ANSWER_BYTES, where)
        except http.client.HTTPException as exc:
            # not an OSError (an answer that is not HTTP, or cut): a failed request, as urllib
            # reports a refused connection
            raise urllib.error.URLError(exc) from None
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError:
            raise UnexpectedAnswer(f"{where}: the answer is not UTF-8 text; check the endpoint "
                                   "(an override or proxy pointing elsewhere?)") from None

    def _token(self, timeout: float) -> str | None:
        request = urllib.request.Request(self.base_url + TOKEN_PATH, method="PUT")
        request.add_header(TOKEN_TTL_HEADER, str(TOKEN_TTL))
        try:
            return self._open(request, timeout)
        except urllib.error.HTTPError as exc:
            if self.v1_fallback:
                return None
            raise FailedPrecondition(
                f"the instance metadata service refused an IMDSv2 token (HTTP {exc.code}) and "
                "the IMDSv1 fallback is off (--disable-imds-v1); enable IMDSv2 on the "
                "node or allow the fallback"
            ) from None

    def get(self, path: str, timeout: float) -> str:
        token = self._token(timeout)
        request = urllib.request.Request(self.base_url + path, method="GET")
        if token is not None:
            request.add_header(TOKEN_HEADER, token)
        return self._open(request, timeout)
