"""Mode 4, nodePublishSecretRef: `access_key` / `access_secret` in the Secret the volume names
(keys matched case-insensitively, as the existing provider does)."""

from __future__ import annotations

from collections.abc import Mapping

from ack_secrets_provider.auth._providers import check_access_key_id, static_identity
from ack_secrets_provider.core.errors import FailedPrecondition
from ack_secrets_provider.core.plugins.credentials import CredentialContext, Identity, IdentityKey
from ack_secrets_provider.core.plugins.hookspecs import hookimpl
from ack_secrets_provider.core.plugins.toolkit import secret_digest

MODE = "node-publish-secret"
KEY_ID = "access_key"
KEY_SECRET = "access_secret"


def _lookup(secrets: Mapping[str, str], wanted: str) -> str | None:
    for name, value in secrets.items():
        if name.lower() == wanted and value.strip():
            return value.strip()
    return None


@hookimpl
def ack_resolve_identity(context: CredentialContext) -> Identity | None:
    secrets = context.request.secrets
    key_id = _lookup(secrets, KEY_ID)
    secret = _lookup(secrets, KEY_SECRET)
    if key_id is None and secret is None:
        return None
    if key_id is None or secret is None:
        missing = KEY_SECRET if key_id else KEY_ID
        raise FailedPrecondition(
            f"the nodePublishSecretRef Secret of pod {context.request.pod.describe()} has no "
            f"non-empty key {missing!r}; it needs both {KEY_ID} and {KEY_SECRET}"
        )
    check_access_key_id(key_id, f"key {KEY_ID!r} of the nodePublishSecretRef Secret of pod "
                                f"{context.request.pod.describe()}")
    # Not access_key_identity_key's process-wide memo: that is for the environment's pair; a
    # pod's Secret is held no longer than the identity cache holds its identity.
    key = IdentityKey(mode=MODE, access_key_id=key_id, secret_digest=secret_digest(secret))
    return context.identities.get_or_create(
        key,
        lambda: static_identity(key, MODE, key_id, secret, context, provider_level=True),
    )
