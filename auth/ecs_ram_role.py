"""Mode 6, the ECS / worker node's RAM role from the instance metadata service.

The last built-in mode: it applies unless `ALIBABA_CLOUD_ECS_METADATA_DISABLED=true`. It speaks
IMDSv2 first (PUT /latest/api/token, then GETs with the token); when the service refuses the
token request it falls back to IMDSv1 only if `settings.imds_v1_fallback` is on. The role name is
`ALIBABA_CLOUD_ECS_METADATA` or discovered from the service. The base URL is
`http://100.100.100.200` unless the `metadata` endpoint override points elsewhere (the emulator in
tests); the library's EcsRamRoleCredentialsProvider hard-codes the host, hence the core's small
client (core/cloud/metadata.py), which start-up region discovery uses too.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request

from ack_secrets_provider.auth._providers import env, provider_of, refreshing_identity
from ack_secrets_provider.auth._sts import parse_expiration
from ack_secrets_provider.core.cloud.answers import field, optional_field
from ack_secrets_provider.core.cloud.metadata import MetadataClient, metadata_base_url
from ack_secrets_provider.core.errors import (
    FailedPrecondition,
    ProviderError,
    Unavailable,
    UnexpectedAnswer,
)
from ack_secrets_provider.core.plugins.credentials import CredentialContext, Identity, IdentityKey
from ack_secrets_provider.core.plugins.hookspecs import hookimpl
from ack_secrets_provider.core.plugins.toolkit import Issued

MODE = "ecs-ram-role"
CREDENTIALS_PATH = "/latest/meta-data/ram/security-credentials/"

_NOTHING_ELSE = (
    "no other credential is configured (pod-level RRSA, rrsa.enable, ACCESS_KEY_ID / "
    "SECRET_ACCESS_KEY, a nodePublishSecretRef) and"
)


def _metadata_error(exc: Exception, base_url: str, what: str) -> ProviderError:
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, urllib.error.HTTPError):
        if exc.code == 404:
            return FailedPrecondition(
                f"{what}: {_NOTHING_ELSE} the node has no RAM role (the metadata service at "
                f"{base_url} answered 404); attach a RAM role to the worker nodes or configure "
                "one of the other credential modes"
            )
        if exc.code in (401, 403):
            return FailedPrecondition(
                f"{what}: the metadata service at {base_url} refused the request "
                f"(HTTP {exc.code}); check the node's metadata access settings"
            )
        return Unavailable(f"{what}: the metadata service at {base_url} answered HTTP "
                           f"{exc.code}; try again later")
    return FailedPrecondition(
        f"{what}: {_NOTHING_ELSE} the instance metadata service at {base_url} cannot be reached "
        f"({type(exc).__name__}); outside ECS, configure one of the other modes"
    )


def _fetch_credentials(client: MetadataClient, role: str, timeout: float, *,
                       configured: bool = False) -> Issued:
    """The role's credential; `configured`: the role is ALIBABA_CLOUD_ECS_METADATA's."""
    what = f"ECS RAM role {role}"
    try:
        body = json.loads(client.get(CREDENTIALS_PATH + urllib.parse.quote(role), timeout))
    except (OSError, ValueError, RecursionError, ProviderError) as exc:
        if configured and isinstance(exc, urllib.error.HTTPError) and exc.code == 404:
            # the environment names a role the node does not have ("the node has no RAM
            # role" would send the user to the wrong fix)
            raise FailedPrecondition(
                f"{what}: the metadata service at {client.base_url} has no credential for "
                "the role that ALIBABA_CLOUD_ECS_METADATA names (it answered 404); set "
                "ALIBABA_CLOUD_ECS_METADATA to the RAM role attached to the worker nodes, or "
                "unset it to use the role they have"
            ) from None
        raise _metadata_error(exc, client.base_url, what) from None
    if not isinstance(body, dict) or body.get("Code", "Success") != "Success" or not (
        body.get("AccessKeyId") and body.get("AccessKeySecret")
    ):
        raise Unavailable(f"{what}: the metadata service returned no usable credential; "
                          "try again later")
    where = f"{what} from the metadata service at {client.base_url}"
    expiration = optional_field(body.get("Expiration"), str, "Expiration", where)
    try:
        expires = parse_expiration(expiration)
    except ValueError:
        raise UnexpectedAnswer(f"{where}: the answer's field Expiration is not a time such as "
                               "2026-11-28T14:00:00Z") from None
    return Issued(
        access_key_id=field(body["AccessKeyId"], str, "AccessKeyId", where),
        access_key_secret=field(body["AccessKeySecret"], str, "AccessKeySecret", where),
        security_token=optional_field(body.get("SecurityToken"), str, "SecurityToken", where),
        expiration=expires,
    )


def _discover_role(client: MetadataClient, timeout: float) -> str:
    what = "discovering the node's RAM role"
    try:
        listing = client.get(CREDENTIALS_PATH, timeout)
    except (OSError, ProviderError) as exc:
        raise _metadata_error(exc, client.base_url, what) from None
    roles = [line.strip() for line in listing.splitlines() if line.strip()]
    if not roles:
        raise FailedPrecondition(
            f"{what}: {_NOTHING_ELSE} the node has no RAM role attached; attach one or "
            "configure another mode"
        )
    return roles[0]


@hookimpl
def ack_resolve_identity(context: CredentialContext) -> Identity | None:
    settings = context.settings
    disabled = env(settings.environ, "ALIBABA_CLOUD_ECS_METADATA_DISABLED")
    if disabled is not None and disabled.lower() == "true":
        return None
    base_url = metadata_base_url(settings)
    configured_role = env(settings.environ, "ALIBABA_CLOUD_ECS_METADATA")
    cache_key = (MODE, base_url, settings.imds_v1_fallback, configured_role,
                 settings.sts_ca_file)

    def build() -> Identity:
        client = MetadataClient(base_url, v1_fallback=settings.imds_v1_fallback,
                                ca_file=settings.sts_ca_file)
        role = configured_role or _discover_role(client, context.deadline.remaining())
        key = IdentityKey(mode=MODE, role_arn=role)
        return refreshing_identity(
            key, MODE,
            lambda timeout: _fetch_credentials(client, role, timeout,
                                               configured=configured_role is not None),
            context,
            provider_level=True,
        )

    identity = context.identities.get_or_create(cache_key, build, context.deadline)
    provider_of(identity).ensure_fresh(context.deadline)
    return identity
