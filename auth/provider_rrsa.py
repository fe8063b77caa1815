"""Mode 2, provider RRSA: the provider's own ServiceAccount token, exchanged with STS.

Applies when `ALICLOUD_ROLE_ARN` and an OIDC provider ARN (`ALICLOUD_OIDC_PROVIDER_ARN`, or
`ALICLOUD_ACCOUNT_ID` + `ALICLOUD_CLUSTER_ID`) are set, as in the existing provider. The token
is the projected file the chart mounts when `rrsa.enable` is true
(`settings.rrsa_token_file`); it is re-read at every STS call, so a token kubelet rotated is
picked up without a restart. The credential is cached and refreshed once per lifetime.
"""

from __future__ import annotations

from ack_secrets_provider.auth import _sts
from ack_secrets_provider.auth._providers import (
    check_role_arn,
    env,
    provider_of,
    provider_oidc_arn,
    refreshing_identity,
    role_session,
)
from ack_secrets_provider.core.cloud.kube import TokenFileProblem, read_token_file
from ack_secrets_provider.core.errors import FailedPrecondition
from ack_secrets_provider.core.plugins.credentials import CredentialContext, Identity, IdentityKey
from ack_secrets_provider.core.plugins.hookspecs import hookimpl
from ack_secrets_provider.core.plugins.toolkit import Issued

MODE = "provider-rrsa"


def read_token(path: str) -> str:
    """The projected token, read now (kubelet replaces the file when it rotates it)."""
    try:
        return read_token_file(path)
    except TokenFileProblem as problem:
        raise FailedPrecondition(
            "provider RRSA is configured (ALICLOUD_ROLE_ARN and an OIDC provider ARN are set) "
            f"but the token file {path} (--rrsa-token-file) {problem}; with rrsa.enable=true "
            "in the Helm values kubelet writes the provider's projected token (audience "
            "sts.aliyuncs.com) there: point --rrsa-token-file at that token"
        ) from None


@hookimpl
def ack_resolve_identity(context: CredentialContext) -> Identity | None:
    environ = context.settings.environ
    role_arn = env(environ, "ALICLOUD_ROLE_ARN")
    if role_arn is None:
        return None
    oidc_arn = provider_oidc_arn(environ)
    if oidc_arn is None:
        return None
    check_role_arn(role_arn, "environment variable ALICLOUD_ROLE_ARN")
    session, duration = role_session(environ)
    settings = context.settings
    token_file = settings.rrsa_token_file
    key = IdentityKey(mode=MODE, role_arn=role_arn)
    endpoint = _sts.sts_endpoint(settings, context.request.region)
    cache_key = (key, oidc_arn, token_file, session, duration, endpoint, settings.sts_ca_file)

    def build() -> Identity:
        client = _sts.make_client(settings, endpoint)

        def fetch(timeout: float) -> Issued:
            token = read_token(token_file)
            return _sts.assume_role_with_oidc(
                client, role_arn=role_arn, oidc_provider_arn=oidc_arn, token=token,
                session=session, duration=duration, timeout=timeout,
                what=f"provider RRSA (role {role_arn})",
                hint=(f"check the role's trust policy allows the OIDC provider {oidc_arn} and "
                      "the provider's ServiceAccount as subject"),
                metrics=context.metrics,
            )

        return refreshing_identity(key, MODE, fetch, context, provider_level=True)

    identity = context.identities.get_or_create(cache_key, build)
    provider_of(identity).ensure_fresh(context.deadline)
    return identity
