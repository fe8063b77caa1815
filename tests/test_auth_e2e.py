"""Every credential mode end to end: CredentialHost.resolve with the real plugins, STS over TLS
and instance metadata from the emulator, then a real KMS GetSecretValue through the KMS SDK that
the emulator verifies (signature, security token, expiry, the role's allow-list). The account
(seed, emulator, fixtures) is shared with test_e2e_auth.py: tests/auth_world.py."""

from __future__ import annotations

import json
from collections.abc import Mapping

import auth_world
import pytest
from alibabacloud_kms20160120 import models as kms_models
from alibabacloud_kms20160120.client import Client as KmsClient
from alibabacloud_tea_openapi.exceptions import ClientException
from alibabacloud_tea_openapi.utils_models import Config
from auth_world import (
    ACCOUNT,
    AK_ENV,
    NO_ECS,
    NODE_ROLE,
    NPS,
    NPS_KEY,
    NPS_SECRET,
    OIDC_ENV,
    PROVIDER_SA,
    ROLE_A,
    ROLE_CROSS,
    ROLE_ENV,
    ROLE_PROVIDER,
    SECRETS,
    USER_KEY,
    AuthWorld,
    FakeClock,
)
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from ack_secrets_provider.auth import _providers, kube
from ack_secrets_provider.core.errors import FailedPrecondition, PermissionDenied, ProviderError
from ack_secrets_provider.core.mount.spec import ATTR_SA_TOKENS, parse_mount_request
from ack_secrets_provider.core.plugins.credentials import CredentialContext, Identity
from ack_secrets_provider.core.resilience.deadline import Deadline
from ack_secrets_provider.core.settings import ProviderSettings

# the module-scoped world and the autouse reset before every test (pytest fixtures)
env, fresh = auth_world.env, auth_world.fresh


def context(settings: ProviderSettings, *, namespace: str = "team-a", sa: str = "app-a",
            pod_identity: bool = False, token: str | None = None,
            secrets: Mapping[str, str] | None = None) -> CredentialContext:
    attrs = {"csi.storage.k8s.io/pod.name": f"{sa}-0",
             "csi.storage.k8s.io/pod.namespace": namespace,
             "csi.storage.k8s.io/serviceAccount.name": sa}
    if pod_identity:
        attrs["usePodServiceAccountToken"] = "true"
    if token is not None:
        attrs[ATTR_SA_TOKENS] = json.dumps(
            {"sts.aliyuncs.com": {"token": token, "expirationTimestamp": "2099-01-01T00:00:00Z"}})
    request = parse_mount_request(json.dumps(attrs), json.dumps(dict(secrets or {})), "420")
    return CredentialContext(request, settings, Deadline.after(30))


def kms_get(env: AuthWorld, identity: Identity, name: str) -> str:
    client = KmsClient(Config(endpoint=env.emulator.http_address, protocol="http",
                              credential=identity.credential, region_id="cn-hangzhou"))
    response = client.get_secret_value(kms_models.GetSecretValueRequest(secret_name=name))
    return str(response.body.secret_data)


# --- each mode end to end ---------------------------------------------------------------------

def test_pod_rrsa_end_to_end(env: AuthWorld) -> None:
    settings = env.settings({**OIDC_ENV, **NO_ECS})
    identity = env.host.resolve(context(settings, pod_identity=True,
                                        token=env.token("team-a", "app-a")))
    assert identity.key.mode == "pod-rrsa" and identity.key.subject == "team-a/app-a"
    assert identity.key.role_arn == ROLE_A and identity.provider_level is False
    assert kms_get(env, identity, "app-a/db") == "pw-a"
    with pytest.raises(ClientException) as denied:
        kms_get(env, identity, "provider/db")
    assert denied.value.code == "Forbidden.NoPermission"
    assert env.sts.issued[-1] == ("AssumeRoleWithOIDC", ROLE_A, "ack-team-a-app-a")


def test_pod_rrsa_uses_account_and_cluster_ids(env: AuthWorld) -> None:
    settings = env.settings({"ALICLOUD_ACCOUNT_ID": ACCOUNT, "ALICLOUD_CLUSTER_ID": "c1",
                             **NO_ECS})
    identity = env.host.resolve(context(settings, namespace="team-b", sa="app-b",
                                        pod_identity=True, token=env.token("team-b", "app-b")))
    assert kms_get(env, identity, "app-b/db") == "pw-b"


def test_provider_rrsa_end_to_end_and_token_rotation(env: AuthWorld) -> None:
    env.write_provider_token()
    settings = env.settings({**ROLE_ENV, **OIDC_ENV, **NO_ECS})
    identity = env.host.resolve(context(settings))
    assert identity.key.mode == "provider-rrsa" and identity.provider_level
    assert kms_get(env, identity, "provider/db") == "pw-provider"
    # kubelet rotates the file; the old token expires. The next refresh must read the new one.
    env.write_provider_token(expires_in=7200)
    clock = FakeClock()
    _providers.CACHE.clear()
    _providers.CACHE.clock = clock
    env.host.resolve(context(settings))
    env.write_provider_token(expires_in=-10)  # an expired token: STS refuses it
    clock.advance(4000)
    with pytest.raises(ProviderError) as refused:
        env.host.resolve(context(settings))
    assert "Expired" in str(refused.value)
    assert env.token(*PROVIDER_SA)[:20] not in str(refused.value)


def test_provider_rrsa_without_token_file_says_rrsa_enable(env: AuthWorld) -> None:
    settings = env.settings({**ROLE_ENV, **OIDC_ENV, **NO_ECS},
                            rrsa_token_file="/nonexistent/token")
    with pytest.raises(FailedPrecondition, match="rrsa.enable=true"):
        env.host.resolve(context(settings))


def test_ak_assume_role_end_to_end(env: AuthWorld) -> None:
    settings = env.settings({**AK_ENV, **ROLE_ENV, "ALICLOUD_ROLE_SESSION_NAME": "my-session",
                             "ALICLOUD_ROLE_SESSION_EXPIRATION": "1800", **NO_ECS})
    identity = env.host.resolve(context(settings))
    assert identity.key.mode == "ak-assume-role" and identity.key.access_key_id == USER_KEY
    assert kms_get(env, identity, "provider/db") == "pw-provider"
    assert env.sts.issued[-1] == ("AssumeRole", ROLE_PROVIDER, "my-session")
    principals = env.emulator.counters.snapshot()["by_principal"]
    assert principals.get(ROLE_PROVIDER) == 1 and "ci-user" in principals  # signed AssumeRole


def test_ak_assume_role_wrong_secret_is_unauthenticated_and_secret_not_shown(
    env: AuthWorld,
) -> None:
    settings = env.settings({"ACCESS_KEY_ID": USER_KEY, "SECRET_ACCESS_KEY": "wrong-secret-xyz",
                             **ROLE_ENV, **NO_ECS})
    with pytest.raises(ProviderError) as err:
        env.host.resolve(context(settings))
    assert err.value.reason == "Unauthenticated"
    assert "wrong-secret-xyz" not in str(err.value)


def test_node_publish_secret_end_to_end(env: AuthWorld) -> None:
    identity = env.host.resolve(context(env.settings(NO_ECS), secrets=NPS))
    assert identity.key.mode == "node-publish-secret" and identity.key.access_key_id == NPS_KEY
    assert kms_get(env, identity, "shared/db") == "pw-shared"
    assert env.api("sts.AssumeRole") == 0


def test_static_ak_end_to_end(env: AuthWorld) -> None:
    identity = env.host.resolve(context(env.settings({**AK_ENV, **NO_ECS})))
    assert identity.key.mode == "static-ak"
    assert kms_get(env, identity, "user/db") == "pw-user"
    assert env.emulator.counters.snapshot()["by_principal"] == {"ci-user": 1}


@pytest.mark.parametrize("require_v2", [False, True])
def test_ecs_ram_role_end_to_end_imdsv2(env: AuthWorld, require_v2: bool) -> None:
    env.metadata.configure({"require_v2": require_v2})  # `fresh` restores the seed's
    v1_before = env.metadata.v1_requests
    identity = env.host.resolve(context(env.settings()))
    assert identity.key.mode == "ecs-ram-role" and identity.key.role_arn == NODE_ROLE
    assert kms_get(env, identity, "node/db") == "pw-node"
    assert env.api("metadata./latest/api/token") >= 1
    assert env.metadata.v1_requests == v1_before  # IMDSv2 was used


def test_ecs_imdsv1_fallback_and_switch(env: AuthWorld) -> None:
    # an old metadata service: no IMDSv2 and so no way to require it (`fresh` restores both)
    env.metadata.configure({"v2_enabled": False, "require_v2": False})
    identity = env.host.resolve(context(env.settings()))
    assert kms_get(env, identity, "node/db") == "pw-node"
    assert env.metadata.v1_requests > 0
    _providers.CACHE.clear()
    with pytest.raises(FailedPrecondition, match="IMDSv2"):
        env.host.resolve(context(env.settings(imds_v1_fallback=False)))


def test_cross_account_on_top_of_ak_assume_role(env: AuthWorld) -> None:
    ctx = context(env.settings({**AK_ENV, **ROLE_ENV, **NO_ECS}))
    base = env.host.resolve(ctx)
    crossed = env.host.assume_role(base, ROLE_CROSS, ctx)
    assert crossed.key.cross_account_role == ROLE_CROSS and crossed.key.role_arn == ROLE_PROVIDER
    assert kms_get(env, crossed, "cross/db") == "pw-cross"
    with pytest.raises(ClientException):
        kms_get(env, crossed, "provider/db")
    # cached: the second use costs no STS call
    calls = env.api("sts.AssumeRole")
    assert env.host.assume_role(base, ROLE_CROSS, ctx) is crossed
    assert env.api("sts.AssumeRole") == calls


def test_cross_account_refused_by_trust_policy(env: AuthWorld) -> None:
    settings = env.settings({**OIDC_ENV, **NO_ECS})
    ctx = context(settings, pod_identity=True, token=env.token("team-a", "app-a"))
    base = env.host.resolve(ctx)
    with pytest.raises(PermissionDenied, match="trust"):
        env.host.assume_role(base, ROLE_CROSS, ctx)


# --- chain order ------------------------------------------------------------------------------

#: every provider-level mode configured at once (ECS metadata is on: NO_ECS is not in it)
ALL_PROVIDER_ENV = {**AK_ENV, **ROLE_ENV, **OIDC_ENV}


def test_chain_order_when_everything_applies(env: AuthWorld) -> None:
    env.write_provider_token()
    nps = {"access_key": NPS_KEY, "access_secret": NPS_SECRET}
    full = env.settings(ALL_PROVIDER_ENV)
    token = env.token("team-a", "app-a")
    # pod identity requested: it wins over everything
    assert env.host.resolve(context(full, pod_identity=True, token=token, secrets=nps)
                            ).key.mode == "pod-rrsa"
    # provider RRSA before AccessKey + AssumeRole and the nodePublishSecretRef
    assert env.host.resolve(context(full, secrets=nps)).key.mode == "provider-rrsa"
    no_oidc = {k: v for k, v in ALL_PROVIDER_ENV.items() if k != "ALICLOUD_OIDC_PROVIDER_ARN"}
    assert env.host.resolve(context(env.settings(no_oidc), secrets=nps)
                            ).key.mode == "ak-assume-role"
    assert env.host.resolve(context(env.settings(AK_ENV), secrets=nps)
                            ).key.mode == "node-publish-secret"
    assert env.host.resolve(context(env.settings(AK_ENV))).key.mode == "static-ak"
    assert env.host.resolve(context(env.settings())).key.mode == "ecs-ram-role"
    with pytest.raises(FailedPrecondition, match="no credential is configured"):
        env.host.resolve(context(env.settings(NO_ECS)))


# --- no silent fallback -----------------------------------------------------------------------

@pytest.mark.parametrize("case", ["no-token", "no-annotation", "no-serviceaccount",
                                  "sts-refuses", "wrong-subject", "no-oidc-provider"])
def test_pod_identity_missing_piece_fails_without_other_identity(env: AuthWorld, case: str) -> None:
    environ = dict(ALL_PROVIDER_ENV)
    namespace, sa = "team-a", "app-a"
    token: str | None = env.token(namespace, sa)
    expected: tuple[type[ProviderError], str]
    if case == "no-token":
        token, expected = None, (FailedPrecondition, "tokenRequests")
    elif case == "no-annotation":
        namespace, sa = "team-c", "plain"
        token = env.token(namespace, sa)
        expected = (FailedPrecondition, "kubectl annotate serviceaccount -n team-c plain")
    elif case == "no-serviceaccount":
        namespace, sa = "team-c", "ghost"
        token = env.token(namespace, sa)
        expected = (FailedPrecondition, "does not exist")
    elif case == "sts-refuses":  # ROLE_A does not trust team-a/other
        env.kube.add("team-a", "other", {kube.ROLE_ANNOTATION: ROLE_A})
        sa = "other"
        token = env.token(namespace, sa)
        expected = (PermissionDenied, "trust policy")
    elif case == "wrong-subject":
        token = env.token("team-b", "app-b")
        expected = (PermissionDenied, "belongs to")
    else:
        for name in ("ALICLOUD_OIDC_PROVIDER_ARN", "ALICLOUD_ROLE_ARN"):
            environ.pop(name)
        expected = (FailedPrecondition, "rrsa.accountId")
    env.write_provider_token()
    settings = env.settings(environ)
    with pytest.raises(expected[0], match=expected[1]) as err:
        env.host.resolve(context(settings, namespace=namespace, sa=sa, pod_identity=True,
                                 token=token))
    if token:
        assert token not in str(err.value)
    snapshot = env.emulator.counters.snapshot()
    assert snapshot["by_api"].get("kms.GetSecretValue", 0) == 0
    assert snapshot["by_api"].get("sts.AssumeRole", 0) == 0  # no provider identity was made
    assert not any(k.startswith("metadata.") for k in snapshot["by_api"])


# --- one STS call per credential lifetime ----------------------------------------------------

@pytest.mark.parametrize("mode", ["pod-rrsa", "ak-assume-role", "ecs-ram-role"])
def test_one_sts_call_per_lifetime_over_100_mounts(env: AuthWorld, mode: str) -> None:
    clock = FakeClock().install()
    if mode == "pod-rrsa":
        settings = env.settings({**OIDC_ENV, **NO_ECS})
        api, secret, value = "sts.AssumeRoleWithOIDC", "app-a/db", "pw-a"

        def make() -> CredentialContext:
            return context(settings, pod_identity=True, token=env.token("team-a", "app-a"))
    elif mode == "ak-assume-role":
        settings = env.settings({**AK_ENV, **ROLE_ENV, **NO_ECS})
        api, secret, value = "sts.AssumeRole", "provider/db", "pw-provider"

        def make() -> CredentialContext:
            return context(settings)
    else:
        settings = env.settings()
        api = f"metadata./latest/meta-data/ram/security-credentials/{NODE_ROLE}"
        secret, value = "node/db", "pw-node"

        def make() -> CredentialContext:
            return context(settings)
    first = None
    for _ in range(100):
        identity = env.host.resolve(make())
        first = first or identity
        assert identity is first
        assert kms_get(env, identity, secret) == value
    assert env.api(api) == 1
    assert env.api("kms.GetSecretValue") == 100
    if mode == "pod-rrsa":
        assert env.kube.calls == 1  # the annotation is cached too
    # the credential nears its expiry (3000 s of 3600 passed) and then expires upstream:
    # exactly one new call, and KMS accepts the new credential
    old = identity.credential.get_credential().access_key_id
    clock.advance(3000)
    env.emulator.credentials.expire(old)
    if mode == "ecs-ram-role":
        env.metadata.configure({"credential_duration": 3600})  # the service rotates it too
    for _ in range(5):
        identity = env.host.resolve(make())
        assert kms_get(env, identity, secret) == value
    assert env.api(api) == 2
    assert identity.credential.get_credential().access_key_id != old


# --- two pods, two roles, one secret, any interleaving ----------------------------------------

POD_ROLES = {("team-a", "app-a"): {"app-a/db", "shared/db"}, ("team-b", "app-b"): {"app-b/db"}}


class TwoPods(RuleBasedStateMachine):
    """Pods of different roles request the same secrets in any order: each gets exactly what
    its role's allow-list permits, never a value through the other pod's identity."""

    env: AuthWorld

    def __init__(self) -> None:
        super().__init__()
        self.settings = self.env.settings({**OIDC_ENV, **NO_ECS})
        self.seen: dict[tuple[str, str], Identity] = {}

    @rule(pod=st.sampled_from(sorted(POD_ROLES)), secret=st.sampled_from(sorted(SECRETS)))
    def mount(self, pod: tuple[str, str], secret: str) -> None:
        namespace, sa = pod
        identity = self.env.host.resolve(context(
            self.settings, namespace=namespace, sa=sa, pod_identity=True,
            token=self.env.token(namespace, sa)))
        assert identity.key.subject == f"{namespace}/{sa}"
        self.seen[pod] = identity
        if secret in POD_ROLES[pod]:
            assert kms_get(self.env, identity, secret) == SECRETS[secret]
        else:
            with pytest.raises(ClientException) as denied:
                kms_get(self.env, identity, secret)
            assert denied.value.code == "Forbidden.NoPermission"

    @rule(pod=st.sampled_from(sorted(POD_ROLES)))
    def credential_expires(self, pod: tuple[str, str]) -> None:
        identity = self.seen.get(pod)
        if identity is not None:
            _providers.provider_of(identity)._refresh_at = 0.0  # due now: next mount refreshes

    @invariant()
    def identities_stay_apart(self) -> None:
        if len(self.seen) == 2:
            a, b = self.seen.values()
            assert a.key != b.key and a.credential is not b.credential
            assert (a.credential.get_credential().access_key_id
                    != b.credential.get_credential().access_key_id)


def test_two_pods_stateful(env: AuthWorld) -> None:
    TwoPods.env = env
    TwoPods.TestCase.settings = hsettings(max_examples=15, stateful_step_count=12,
                                          deadline=None, database=None)
    TwoPods.TestCase().runTest()
