"""What the built-in credential plugins share: identities around a refreshing provider, and
reading their configuration from the provider's environment snapshot.

Identities are kept in the credential host's cache (`context.identities`), built once per cache
key: the IdentityKey plus what else decides where and how the credential is fetched (the STS
endpoint, a digest of an AccessKey secret), so a changed setting or a rotated AccessKey secret
builds a new identity instead of reusing a stale one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import cachetools.func

from ack_secrets_provider.core.errors import FailedPrecondition, ProviderError
from ack_secrets_provider.core.mount.arn import parse_arn
from ack_secrets_provider.core.plugins.credentials import CredentialContext, Identity, IdentityKey
from ack_secrets_provider.core.plugins.toolkit import (
    Issued,
    RefreshingProvider,
    refreshing_identity,
    secret_digest,
)

__all__ = ["refreshing_identity"]  # the toolkit's, for the built-in plugins


@cachetools.func.lru_cache(maxsize=64)  # the provider's bounded caches are cachetools'
def access_key_identity_key(
    mode: str, access_key_id: str, access_key_secret: str, role_arn: str | None = None,
) -> IdentityKey:
    """The IdentityKey of the environment's AccessKey pair (and the role it assumes, if any),
    built once per pair: the keyed digest of the secret is computed once, not at every mount (the
    pair is fixed for the process). A rotated secret is another argument, hence another key.
    Pods' nodePublishSecretRef pairs do not come here: a process-wide memo would keep them."""
    return IdentityKey(mode=mode, role_arn=role_arn, access_key_id=access_key_id,
                       secret_digest=secret_digest(access_key_secret))


def static_identity(
    key: IdentityKey, name: str, access_key_id: str, access_key_secret: str,
    context: CredentialContext, *, provider_level: bool,
) -> Identity:
    """An Identity for a long-lived AccessKey pair (never refreshed)."""
    issued = Issued(access_key_id, access_key_secret)
    return refreshing_identity(key, name, lambda _timeout: issued, context,
                               provider_level=provider_level)


def provider_of(identity: Identity) -> RefreshingProvider:
    """The refreshing provider inside a built-in identity's credential client."""
    provider = identity.credential.cloud_credential.provider
    if not isinstance(provider, RefreshingProvider):
        raise TypeError(f"identity {identity.describe()} was not built by a built-in plugin")
    return provider


def env(environ: Mapping[str, str], name: str) -> str | None:
    """An environment value from the settings snapshot, stripped; empty counts as unset."""
    value = environ.get(name)
    if value is None:
        return None
    value = value.strip()
    return value or None


def provider_oidc_arn(environ: Mapping[str, str]) -> str | None:
    """The provider's OIDC provider ARN: ALICLOUD_OIDC_PROVIDER_ARN, else built from
    ALICLOUD_ACCOUNT_ID + ALICLOUD_CLUSTER_ID as ACK names it. None when neither is set;
    FailedPrecondition when only one of account and cluster is set (a half-done RRSA setup)."""
    explicit = env(environ, "ALICLOUD_OIDC_PROVIDER_ARN")
    if explicit:
        return explicit
    account = env(environ, "ALICLOUD_ACCOUNT_ID")
    cluster = env(environ, "ALICLOUD_CLUSTER_ID")
    if account and cluster:
        return f"acs:ram::{account}:oidc-provider/ack-rrsa-{cluster}"
    if account or cluster:
        missing = "ALICLOUD_CLUSTER_ID (rrsa.clusterId)" if account else (
            "ALICLOUD_ACCOUNT_ID (rrsa.accountId)")
        raise FailedPrecondition(
            f"RRSA is half configured: {missing} is not set; set both rrsa.accountId and "
            "rrsa.clusterId, or ALICLOUD_OIDC_PROVIDER_ARN through envVarsFromSecret"
        )
    return None


def check_role_arn(value: str, where: str, error: type[ProviderError] = FailedPrecondition) -> str:
    """Refuse a value that is not a RAM role ARN (`acs:ram::<account-id>:role/<name>`)."""
    try:
        arn = parse_arn(value)
    except ValueError as exc:
        raise error(f"{where}: {exc}; a RAM role ARN looks like "
                    "acs:ram::123456789012:role/my-role") from None
    if arn.service != "ram" or arn.resource_type != "role" or not arn.account:
        raise error(f"{where}: {value!r} is not a RAM role ARN; it must look like "
                    "acs:ram::123456789012:role/my-role")
    return value


def role_session(environ: Mapping[str, str]) -> tuple[str, int]:
    """RoleSessionName and DurationSeconds from ALICLOUD_ROLE_SESSION_NAME /
    ALICLOUD_ROLE_SESSION_EXPIRATION (seconds, 900 or more), with the defaults."""
    from ack_secrets_provider.auth import _sts

    name = env(environ, "ALICLOUD_ROLE_SESSION_NAME")
    raw = env(environ, "ALICLOUD_ROLE_SESSION_EXPIRATION")
    duration = _sts.DEFAULT_DURATION
    if raw is not None:
        try:
            duration = int(raw)
        except ValueError:
            duration = -1
        if duration < _sts.MIN_DURATION:
            raise FailedPrecondition(
                f"ALICLOUD_ROLE_SESSION_EXPIRATION is {raw!r}; set it to a whole number of "
                f"seconds, at least {_sts.MIN_DURATION} (STS refuses shorter sessions) and at "
                "most the role's maximum session duration"
            )
    return (_sts.session_name(name) if name else _sts.DEFAULT_SESSION_NAME), duration


#: what an AccessKey ID may hold: visible ASCII (it travels in an HTTP header)
_ACCESS_KEY_ID = re.compile(r"[\x21-\x7e]+")


def check_access_key_id(key_id: str, where: str) -> str:
    """Refuse an AccessKey ID no request can carry: the SDK reported one with a pasted
    invisible character as a bug of its own (UnicodeEncodeError), one with a line break as an
    unreachable endpoint. The value is never quoted."""
    if not _ACCESS_KEY_ID.fullmatch(key_id):
        raise FailedPrecondition(
            f"{where} holds characters no AccessKey ID has (a space, a line break, an invisible "
            "or full-width character copied with it); copy the AccessKey ID again from the RAM "
            "console"
        )
    return key_id


def access_key_pair(environ: Mapping[str, str]) -> tuple[str, str] | None:
    """ACCESS_KEY_ID + SECRET_ACCESS_KEY from the environment snapshot; None when neither is
    set; FailedPrecondition naming the missing one when only one is."""
    key_id = env(environ, "ACCESS_KEY_ID")
    secret = env(environ, "SECRET_ACCESS_KEY")
    if key_id and secret:
        check_access_key_id(
            key_id, "the environment variable ACCESS_KEY_ID (Helm value envVarsFromSecret)")
        return key_id, secret
    if key_id or secret:
        missing = "SECRET_ACCESS_KEY" if key_id else "ACCESS_KEY_ID"
        raise FailedPrecondition(
            f"an AccessKey is half configured: {missing} is not set; set both ACCESS_KEY_ID and "
            "SECRET_ACCESS_KEY (Helm value envVarsFromSecret) or neither"
        )
    return None


def static_credential(access_key_id: str, access_key_secret: str) -> Any:
    """A credential client for a fixed AccessKey pair (the base of an AssumeRole)."""
    issued = Issued(access_key_id, access_key_secret)
    from alibabacloud_credentials.client import Client as CredentialClient

    return CredentialClient(provider=RefreshingProvider("static_ak", lambda _t: issued))
