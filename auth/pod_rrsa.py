"""Mode 1, pod-level RRSA: the pod's own ServiceAccount identity (`usePodServiceAccountToken`).

The pod's token (audience sts.aliyuncs.com) comes in the Mount request; the role ARN is the
ServiceAccount annotation `ack.alibabacloud.com/role-arn` (read through the Kubernetes API, cached
briefly); the OIDC provider ARN is the provider's own. The token goes to STS
`AssumeRoleWithOIDC` as a string and is held in memory only, never written to a file.

When a pod asks for its own identity this plugin either returns it or raises: a missing token,
ServiceAccount info, OIDC provider or annotation, or an STS refusal fails the mount with the
missing piece named. Never a silent fallback to the provider's identity (defect 5 of the existing
provider).
"""

from __future__ import annotations

import base64
import json

from ack_secrets_provider.auth import _sts
from ack_secrets_provider.auth._providers import (
    check_role_arn,
    provider_of,
    provider_oidc_arn,
    refreshing_identity,
)
from ack_secrets_provider.auth.kube import ROLE_ANNOTATION
from ack_secrets_provider.auth.kube import role_arn as annotated_role
from ack_secrets_provider.core.cloud.endpoints import Endpoint
from ack_secrets_provider.core.errors import (
    FailedPrecondition,
    PermissionDenied,
    Unauthenticated,
)
from ack_secrets_provider.core.observability.metrics import ProviderMetrics
from ack_secrets_provider.core.plugins.credentials import CredentialContext, Identity, IdentityKey
from ack_secrets_provider.core.plugins.hookspecs import hookimpl
from ack_secrets_provider.core.plugins.toolkit import Issued, secret_digest
from ack_secrets_provider.core.settings import ProviderSettings

MODE = "pod-rrsa"
AUDIENCE = "sts.aliyuncs.com"


class _OidcFetch:
    """AssumeRoleWithOIDC with the one token this identity was built for."""

    def __init__(
        self, settings: ProviderSettings, endpoint: Endpoint, *, role_arn: str,
        oidc_provider_arn: str, subject: str, session: str, token: str,
        metrics: ProviderMetrics,
    ) -> None:
        self._client = _sts.make_client(settings, endpoint)
        self._metrics = metrics
        self._role_arn = role_arn
        self._oidc_provider_arn = oidc_provider_arn
        self._subject = subject
        self._session = session
        self._token = token

    def __call__(self, timeout: float) -> Issued:
        return _sts.assume_role_with_oidc(
            self._client, role_arn=self._role_arn, oidc_provider_arn=self._oidc_provider_arn,
            token=self._token, session=self._session, duration=_sts.DEFAULT_DURATION,
            timeout=timeout,
            what=f"pod-level RRSA for serviceaccount {self._subject} (role {self._role_arn})",
            hint=(f"check the role's trust policy allows the OIDC provider "
                  f"{self._oidc_provider_arn} and the subject "
                  f"system:serviceaccount:{self._subject.replace('/', ':')}, and that the "
                  "role exists"),
            metrics=self._metrics,
        )


def _token_claims(token: str) -> dict[str, object] | None:
    """The claims of a JWT, without verifying it (STS verifies); None if not a JWT."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        padded = parts[1] + "=" * (-len(parts[1]) % 4)
        claims = json.loads(base64.urlsafe_b64decode(padded))
    except (ValueError, TypeError, RecursionError):  # RecursionError: claims nested too deep
        return None
    return claims if isinstance(claims, dict) else None


@hookimpl
def ack_resolve_identity(context: CredentialContext) -> Identity | None:
    request = context.request
    if not request.use_pod_identity:
        return None
    pod = request.pod
    where = (f"pod {pod.describe()} asked for its own identity "
             "(usePodServiceAccountToken: \"true\")")
    if not pod.namespace or not pod.service_account:
        raise FailedPrecondition(
            f"{where}, but the driver sent no pod namespace/ServiceAccount name; the CSIDriver "
            "secrets-store.csi.k8s.io needs podInfoOnMount: true"
        )
    token = request.service_account_token(AUDIENCE)
    if token is None:
        raise FailedPrecondition(
            f"{where}, but the driver sent no ServiceAccount token for the audience {AUDIENCE}; "
            "add it to the CSIDriver secrets-store.csi.k8s.io: tokenRequests: [{audience: "
            f"{AUDIENCE}}}] (Helm value secrets-store-csi-driver.tokenRequests[0].audience="
            f"{AUDIENCE})"
        )
    expected_sub = f"system:serviceaccount:{pod.namespace}:{pod.service_account}"
    claims = _token_claims(token.token) or {}
    sub, expires = claims.get("sub"), claims.get("exp")
    if not isinstance(sub, str) or not isinstance(expires, int | float):
        # A ServiceAccount token is always a JWT with a subject: anything else did not come
        # from kubelet's tokenRequests (it may have been injected through volumeAttributes).
        raise Unauthenticated(
            f"{where}, but the {AUDIENCE} token it sent is not a ServiceAccount token (a JWT "
            "with a subject and an expiry); check the CSIDriver tokenRequests configuration"
        )
    if sub != expected_sub:
        raise PermissionDenied(
            f"{where}, but its token belongs to {sub!r}, not to {expected_sub!r}; the token "
            "and the pod information come from the driver and must agree"
        )
    if expires <= context.identities.clock():
        # Checked here although STS would refuse it too: a credential this token obtained
        # earlier is still cached, and an expired token must not get it back.
        raise Unauthenticated(
            f"{where}, but the {AUDIENCE} token it sent has expired; kubelet refreshes the "
            "token: check that the CSIDriver has requiresRepublish: true, and the node's clock"
        )
    oidc_arn = provider_oidc_arn(context.settings.environ)
    if oidc_arn is None:
        raise FailedPrecondition(
            f"{where}, but the provider knows no OIDC provider ARN; set rrsa.accountId and "
            "rrsa.clusterId in the Helm values (or ALICLOUD_OIDC_PROVIDER_ARN through "
            "envVarsFromSecret)"
        )
    role_arn = annotated_role(context.kube, pod.namespace, pod.service_account, context.deadline)
    if role_arn is None:
        raise FailedPrecondition(
            f"{where}, but its ServiceAccount {pod.namespace}/{pod.service_account} has no "
            f"annotation {ROLE_ANNOTATION}; add it: kubectl annotate serviceaccount -n "
            f"{pod.namespace} {pod.service_account} "
            f"{ROLE_ANNOTATION}=acs:ram::<account-id>:role/<role-name>"
        )
    check_role_arn(
        role_arn,
        f"annotation {ROLE_ANNOTATION} of serviceaccount {pod.namespace}/{pod.service_account}",
    )
    subject = f"{pod.namespace}/{pod.service_account}"
    key = IdentityKey(mode=MODE, role_arn=role_arn, subject=subject)
    endpoint = _sts.sts_endpoint(context.settings, request.region)
    # The token's digest is part of the key: a cached credential is handed only to the token
    # STS accepted for it, never to a forged, unsigned or other token of the same pod.
    cache_key = (key, oidc_arn, endpoint, context.settings.sts_ca_file,
                 secret_digest(token.token))

    def build() -> Identity:
        fetch = _OidcFetch(
            context.settings, endpoint, role_arn=role_arn, oidc_provider_arn=oidc_arn,
            subject=subject, session=_sts.session_name("ack", pod.namespace or "",
                                                       pod.service_account or ""),
            token=token.token, metrics=context.metrics,
        )
        return refreshing_identity(key, MODE, fetch, context, provider_level=False)

    identity = context.identities.get_or_create(cache_key, build, context.deadline)
    provider_of(identity).ensure_fresh(context.deadline)
    return identity
