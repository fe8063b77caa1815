"""Mode 5, a static AccessKey from the environment (`ACCESS_KEY_ID` + `SECRET_ACCESS_KEY`
without `ALICLOUD_ROLE_ARN`). Kept for compatibility; a role (modes 2-3) or RRSA is preferred."""

from __future__ import annotations

from ack_secrets_provider.auth._providers import (
    access_key_identity_key,
    access_key_pair,
    env,
    static_identity,
)
from ack_secrets_provider.core.plugins.credentials import CredentialContext, Identity
from ack_secrets_provider.core.plugins.hookspecs import hookimpl

MODE = "static-ak"


@hookimpl
def ack_resolve_identity(context: CredentialContext) -> Identity | None:
    environ = context.settings.environ
    pair = access_key_pair(environ)
    if pair is None or env(environ, "ALICLOUD_ROLE_ARN") is not None:
        # with a role ARN the key is only for AssumeRole (mode 3 or provider RRSA handles it)
        return None
    key_id, secret = pair
    key = access_key_identity_key(MODE, key_id, secret)
    return context.identities.get_or_create(
        key,
        lambda: static_identity(key, MODE, key_id, secret, context, provider_level=True),
    )
