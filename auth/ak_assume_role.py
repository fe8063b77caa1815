"""Mode 3, AccessKey + AssumeRole: `ACCESS_KEY_ID` / `SECRET_ACCESS_KEY` assume
`ALICLOUD_ROLE_ARN` (session name `ALICLOUD_ROLE_SESSION_NAME`, duration
`ALICLOUD_ROLE_SESSION_EXPIRATION` seconds). The long-lived key only signs the AssumeRole call;
KMS and OOS see the role's temporary credential, fetched once per lifetime."""

from __future__ import annotations

from ack_secrets_provider.auth import _sts
from ack_secrets_provider.auth._providers import (
    access_key_identity_key,
    access_key_pair,
    check_role_arn,
    env,
    provider_of,
    refreshing_identity,
    role_session,
    static_credential,
)
from ack_secrets_provider.core.plugins.credentials import CredentialContext, Identity
from ack_secrets_provider.core.plugins.hookspecs import hookimpl
from ack_secrets_provider.core.plugins.toolkit import Issued

MODE = "ak-assume-role"


@hookimpl
def ack_resolve_identity(context: CredentialContext) -> Identity | None:
    environ = context.settings.environ
    role_arn = env(environ, "ALICLOUD_ROLE_ARN")
    if role_arn is None:
        return None
    pair = access_key_pair(environ)
    if pair is None:
        return None
    key_id, secret = pair
    check_role_arn(role_arn, "environment variable ALICLOUD_ROLE_ARN")
    session, duration = role_session(environ)
    settings = context.settings
    key = access_key_identity_key(MODE, key_id, secret, role_arn)
    endpoint = _sts.sts_endpoint(settings, context.request.region)
    cache_key = (key, session, duration, endpoint, settings.sts_ca_file)

    def build() -> Identity:
        client = _sts.make_client(settings, endpoint, static_credential(key_id, secret))

        def fetch(timeout: float) -> Issued:
            return _sts.assume_role(
                client, role_arn=role_arn, session=session, duration=duration,
                timeout=timeout,
                what=f"AssumeRole into {role_arn} with AccessKey {key_id[:6]}…",
                hint=("the RAM user needs sts:AssumeRole on the role and the role's trust "
                      "policy must trust the user's account"),
                metrics=context.metrics,
            )

        return refreshing_identity(key, MODE, fetch, context, provider_level=True)

    identity = context.identities.get_or_create(cache_key, build)
    provider_of(identity).ensure_fresh(context.deadline)
    return identity
