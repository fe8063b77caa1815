"""STS calls (AssumeRole, AssumeRoleWithOIDC) through the STS SDK, with explicit endpoints.

Why the STS SDK (alibabacloud-sts20150401) rather than alibabacloud-credentials' providers: it
takes the OIDC token as a string (pod tokens never touch the disk), its protocol, CA and timeouts
are configurable (the credentials library hard-codes https and the system roots), and its errors
carry the STS code and request id. The endpoint always comes from
`settings.endpoint_overrides.resolve("sts", host)`; the TLS trust for an https endpoint is the
SDK's bundled roots unless `settings.sts_ca_file` names a CA bundle (the emulator's CA in tests).
"""

from __future__ import annotations

import calendar
import re
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ack_secrets_provider.core.cloud.answers import body_of, field, optional_field
from ack_secrets_provider.core.cloud.endpoints import Endpoint
from ack_secrets_provider.core.cloud.sdk_errors import ServiceHints, map_sdk_error
from ack_secrets_provider.core.errors import (
    FailedPrecondition,
    ProviderError,
    Unavailable,
    UnexpectedAnswer,
)
from ack_secrets_provider.core.observability.metrics import ProviderMetrics
from ack_secrets_provider.core.plugins.toolkit import Issued
from ack_secrets_provider.core.settings import ProviderSettings

if TYPE_CHECKING:  # the STS SDK (and aiohttp under it) is imported on first use, not at start-up
    from alibabacloud_sts20150401.client import Client as StsClient
    from darabonba.runtime import RuntimeOptions

DEFAULT_DURATION = 3600
MIN_DURATION = 900
#: the official provider's RoleSessionNames (ActionTrail queries and trust policies may use them)
DEFAULT_SESSION_NAME = "csi-secrets-store-provider-alibaba"
CROSS_ACCOUNT_SESSION_NAME = "csi-secrets-store-cross-account"

_SESSION_CHARS = re.compile(r"[^\w.@-]")


def sts_endpoint(settings: ProviderSettings, region: str | None = None) -> Endpoint:
    """Where STS calls go: the configured host (regional or VPC), then the override map."""
    region = settings.region or region
    host = settings.sts_endpoint or (
        f"sts-vpc.{region}.aliyuncs.com" if region else "sts.aliyuncs.com"
    )
    return settings.endpoint_overrides.resolve("sts", host)


def session_name(*parts: str) -> str:
    """A RoleSessionName STS accepts: 2-64 characters of [A-Za-z0-9_.@-]."""
    name = _SESSION_CHARS.sub("-", "-".join(p for p in parts if p))[:64]
    return name if len(name) >= 2 else DEFAULT_SESSION_NAME


def make_client(
    settings: ProviderSettings, endpoint: Endpoint, credential: Any | None = None
) -> StsClient:
    """An STS client for exactly `endpoint`; anonymous when `credential` is None."""
    from alibabacloud_sts20150401.client import Client as StsClient
    from alibabacloud_tea_openapi import utils_models as openapi_models

    from ack_secrets_provider.core.cloud import transport

    transport.install(settings.max_upstream_response_bytes)
    private = settings.sts_ca_file and endpoint.protocol == "https"
    ca_files = [settings.sts_ca_file] if private and settings.sts_ca_file else []
    config = openapi_models.Config(
        endpoint=endpoint.address,
        protocol=endpoint.protocol,
        credential=credential,
        ca=transport.ca_option(ca_files),
        connect_timeout=5000,
        read_timeout=10000,
    )
    return StsClient(config)


def _runtime(timeout: float) -> RuntimeOptions:
    from darabonba.runtime import RuntimeOptions

    millis = max(100, int(timeout * 1000))
    return RuntimeOptions(connect_timeout=min(millis, 5000), read_timeout=millis)


def parse_expiration(text: str | None) -> float | None:
    """STS `Expiration` (`2026-11-28T14:00:00Z`) as epoch seconds."""
    if not text:
        return None
    return float(calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ")))


def _issued(response: Any, what: str) -> Issued:
    """The credential of an STS answer, each field checked before use."""
    body = body_of(response, what)
    credentials = body.credentials
    if credentials is None:
        raise Unavailable(f"{what}: STS answered without credentials; try again later")
    key_id = field(credentials.access_key_id, str, "Credentials.AccessKeyId", what)
    secret = field(credentials.access_key_secret, str, "Credentials.AccessKeySecret", what)
    token = optional_field(credentials.security_token, str, "Credentials.SecurityToken", what)
    expiration = optional_field(credentials.expiration, str, "Credentials.Expiration", what)
    if not key_id or not secret:
        raise Unavailable(f"{what}: STS answered without credentials; try again later")
    try:
        expires = parse_expiration(expiration)
    except ValueError:
        raise UnexpectedAnswer(
            f"{what}: the answer's field Credentials.Expiration is not a time such as "
            "2026-11-28T14:00:00Z; check the STS endpoint (--sts-endpoint), or report it"
        ) from None
    return Issued(access_key_id=key_id, access_key_secret=secret, security_token=token,
                  expiration=expires)


#: what the one SDK error mapper (core/cloud/sdk_errors.py) needs to know about STS; each call
#: adds its own advice (`hint`). STS says EntityNotExist.Role for a role the caller may not see,
#: and every refusal comes from the provider's configuration, not from a SecretProviderClass.
HINTS = ServiceHints(
    service="STS",
    object_kind="STS role",
    read_action="sts:AssumeRole",
    permission_codes=("NoPermission", "NotExist", "NotFound", "Forbidden", "NotAuthorized",
                      "Denied"),
    auth_codes=("AccessKeyId", "Signature", "SecurityToken", "Expired", "OIDCToken",
                "InvalidToken"),
    rejected_as=FailedPrecondition,
    unreachable_advice="check the STS endpoint (--sts-endpoint) and the node's network",
    tls_advice=("an https STS endpoint override is trusted with the CA bundle of --sts-ca-file: "
                "point it at a readable PEM file holding the endpoint's CA, or leave it unset "
                "for the public STS endpoints"),
)


def map_sts_error(exc: Exception, what: str, hint: str) -> ProviderError:
    """An STS SDK failure as a provider error naming the call and the fix (`hint`), through the
    one SDK error mapper: only the STS error code and request id are kept, never the SDK's or
    the server's text (STS echoes its string-to-sign in signature errors, and the SDK's network
    errors quote the request URL, whose query holds the OIDC token)."""
    return map_sdk_error(exc, what=what, endpoint=None, hints=replace(HINTS, advice=hint))


def assume_role(
    client: StsClient, *, role_arn: str, session: str, duration: int, timeout: float,
    what: str, hint: str, metrics: ProviderMetrics,
) -> Issued:
    from alibabacloud_sts20150401 import models as sts_models

    request = sts_models.AssumeRoleRequest(
        role_arn=role_arn, role_session_name=session, duration_seconds=duration
    )
    try:
        response = client.assume_role_with_options(request, _runtime(timeout))
    except Exception as exc:
        error = map_sts_error(exc, what, hint)
        metrics.record_sts_call("AssumeRole", error)
        raise error from None
    metrics.record_sts_call("AssumeRole")
    return _issued(response, what)


def assume_role_with_oidc(
    client: StsClient, *, role_arn: str, oidc_provider_arn: str, token: str, session: str,
    duration: int, timeout: float, what: str, hint: str, metrics: ProviderMetrics,
) -> Issued:
    from alibabacloud_sts20150401 import models as sts_models

    request = sts_models.AssumeRoleWithOIDCRequest(
        role_arn=role_arn, oidcprovider_arn=oidc_provider_arn, oidctoken=token,
        role_session_name=session, duration_seconds=duration,
    )
    try:
        response = client.assume_role_with_oidcwith_options(request, _runtime(timeout))
    except Exception as exc:
        error = map_sts_error(exc, what, hint)
        metrics.record_sts_call("AssumeRoleWithOIDC", error)
        raise error from None
    metrics.record_sts_call("AssumeRoleWithOIDC")
    return _issued(response, what)
