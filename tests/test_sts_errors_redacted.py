"""STS failures never forward the SDK's or the server's text.

Real STS echoes its string-to-sign in `SignatureDoesNotMatch` messages (for an RPC call that is
the query string, holding the caller's `SecurityToken`), and the SDK's network errors quote the
request URL, whose query holds the pod's OIDC token in AssumeRoleWithOIDC. Both used to reach the
gRPC error (and so the pod's Events); only the error code and request id may.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from scraped import sample

from ack_secrets_provider.auth import _sts
from ack_secrets_provider.core.cloud.endpoints import Endpoint
from ack_secrets_provider.core.errors import ProviderError, Unauthenticated, Unavailable
from ack_secrets_provider.core.observability.metrics import ProviderMetrics
from ack_secrets_provider.core.plugins.toolkit import Issued, RefreshingProvider
from ack_secrets_provider.core.settings import ProviderSettings

BASE_TOKEN = "CAISbaseSecurityTokenOfThePod0123456789"
BASE_SECRET = "baseTemporarySecret0123456789"
OIDC_TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2E6YTpiIn0.c2lnbmF0dXJlLXZhbHVl"


class _EchoingSts(BaseHTTPRequestHandler):
    """Answers every call as real STS does for a bad signature: echoing its string-to-sign."""

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        echoed = f"{self.command}&{self.path}&{body}&" + "&".join(
            f"{name}={value}" for name, value in self.headers.items())
        payload = json.dumps({
            "Code": "SignatureDoesNotMatch", "RequestId": "REQ-1234",
            "Message": "Specified signature is not matched with our calculation. server "
                       f"string to sign is:{echoed}",
        }).encode()
        self.send_response(400)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = _answer  # noqa: N815 - http.server API

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def echoing_sts() -> Iterator[Endpoint]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EchoingSts)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Endpoint(service="sts", host="sts.cn-hangzhou.aliyuncs.com",
                       address=f"127.0.0.1:{server.server_address[1]}", protocol="http",
                       overridden=True)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def _closed_port() -> int:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = int(probe.getsockname()[1])
    probe.close()
    return port


def _assert_clean(error: ProviderError) -> None:
    for secret in (BASE_TOKEN, BASE_SECRET, OIDC_TOKEN, OIDC_TOKEN.split(".")[2]):
        assert secret not in error.message
    assert "string to sign" not in error.message and "OIDCToken=" not in error.message


def test_a_signature_error_echoing_the_security_token_is_not_forwarded(
    echoing_sts: Endpoint,
) -> None:
    issued = Issued("STS.baseKeyId", BASE_SECRET, security_token=BASE_TOKEN)
    from alibabacloud_credentials.client import Client as CredentialClient

    base = CredentialClient(provider=RefreshingProvider("pod", lambda _t: issued))
    client = _sts.make_client(ProviderSettings(), echoing_sts, base)
    metrics = ProviderMetrics(process_collectors=False)
    with pytest.raises(Unauthenticated) as info:
        _sts.assume_role(client, role_arn="acs:ram::123456789012:role/other", session="s",
                         duration=3600, timeout=5, what="crossAccountRoleArn x", hint="fix it",
                         metrics=metrics)
    _assert_clean(info.value)
    assert sample(metrics, "ack_secrets_provider_sts_calls_total",
                  {"api": "AssumeRole", "result": "unauthenticated"}) == 1
    assert "SignatureDoesNotMatch" in info.value.message and "REQ-1234" in info.value.message


def test_an_oidc_call_that_cannot_connect_does_not_quote_the_token() -> None:
    endpoint = Endpoint(service="sts", host="sts.cn-hangzhou.aliyuncs.com",
                        address=f"127.0.0.1:{_closed_port()}", protocol="http", overridden=True)
    client = _sts.make_client(ProviderSettings(), endpoint)
    with pytest.raises(Unavailable) as info:
        _sts.assume_role_with_oidc(
            client, role_arn="acs:ram::123456789012:role/r",
            oidc_provider_arn="acs:ram::123456789012:oidc-provider/ack-rrsa-c",
            token=OIDC_TOKEN, session="s", duration=3600, timeout=2, what="pod RRSA", hint="h",
            metrics=ProviderMetrics(process_collectors=False))
    _assert_clean(info.value)
    assert "could not reach STS" in info.value.message
    assert "connection failed" in info.value.message
