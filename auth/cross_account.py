"""`crossAccountRoleArn`: AssumeRole into an object's role on top of the mount's identity.

The base identity (any mode) signs the AssumeRole call; its credential client refreshes itself,
so a base that is itself temporary keeps working. The result is cached per (base identity,
role): one STS call per lifetime however many objects and mounts use the pair. The new identity
keeps the base's `provider_level` (the namespace allow-list already judged the base).
"""

from __future__ import annotations

import dataclasses

from ack_secrets_provider.auth import _sts
from ack_secrets_provider.auth._providers import (
    check_role_arn,
    provider_of,
    refreshing_identity,
)
from ack_secrets_provider.core.errors import InvalidArgument
from ack_secrets_provider.core.plugins.credentials import CredentialContext, Identity
from ack_secrets_provider.core.plugins.hookspecs import hookimpl
from ack_secrets_provider.core.plugins.toolkit import Issued

MODE = "cross-account"


@hookimpl
def ack_assume_role(base: Identity, role_arn: str, context: CredentialContext) -> Identity:
    check_role_arn(role_arn, "field crossAccountRoleArn", InvalidArgument)
    settings = context.settings
    key = dataclasses.replace(base.key, cross_account_role=role_arn)
    endpoint = _sts.sts_endpoint(settings, context.request.region)
    # the base Identity object is part of the key: a rebuilt base (other endpoint, rotated
    # secret) gets its own session; identities are cached, so this stays one entry per pair
    cache_key = (MODE, key, id(base.credential), endpoint, settings.sts_ca_file)
    session, _duration = _sts.CROSS_ACCOUNT_SESSION_NAME, _sts.DEFAULT_DURATION

    def build() -> Identity:
        client = _sts.make_client(settings, endpoint, base.credential)

        def fetch(timeout: float) -> Issued:
            return _sts.assume_role(
                client, role_arn=role_arn, session=session, duration=_duration,
                timeout=timeout,
                what=f"crossAccountRoleArn {role_arn} (assumed by {base.describe()})",
                hint=("the base identity needs sts:AssumeRole on the role and the role's trust "
                      "policy must trust the base identity's account"),
                metrics=context.metrics,
            )

        return refreshing_identity(key, MODE, fetch, context, provider_level=base.provider_level)

    identity = context.identities.get_or_create(cache_key, build)
    provider_of(identity).ensure_fresh(context.deadline)
    return identity
