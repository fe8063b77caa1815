"""Every credential mode end to end, at two depths, in one account (tests/auth_world.py).

Through the provider's real unix socket: the driver's Mount goes to the real provider; its
credential plugins get the credential from the emulator's STS (over TLS with the emulator's test
CA) or instance metadata (IMDSv2), or use an AccessKey; the real KMS SDK then signs GetSecretValue
with it and the emulator verifies the signature, the security token, the expiry and the
principal's allow-list. The emulator's per-principal counters show which identity really reached
KMS. Pod RRSA reads the ServiceAccount's role annotation from a fake Kubernetes API on loopback.

At the credential host: `CredentialHost.resolve` with the real plugins, then a real KMS
GetSecretValue through the KMS SDK with the identity it returned, for what the socket cannot show
(the identity's key, token rotation, refresh timing, any interleaving of two pods).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import auth_world
import grpc
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
    NODE_ROLE_ARN,
    NPS,
    NPS_KEY,
    NPS_SECRET,
    OIDC_ENV,
    PROVIDER_SA,
    ROLE_A,
    ROLE_B,
    ROLE_CROSS,
    ROLE_ENV,
    ROLE_PROVIDER,
    SECRETS,
    USER_KEY,
    AuthWorld,
)
from file_writes import files_written
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from installed import SERVICES

from ack_secrets_provider.auth import _providers, kube
from ack_secrets_provider.core.cloud.endpoints import EndpointOverrides
from ack_secrets_provider.core.cloud.kube import MAX_TOKEN_CHARS
from ack_secrets_provider.core.errors import FailedPrecondition, PermissionDenied, ProviderError
from ack_secrets_provider.core.mount.spec import ATTR_SA_TOKENS, parse_mount_request
from ack_secrets_provider.core.plugins.credentials import CredentialContext, Identity
from ack_secrets_provider.core.resilience.deadline import Deadline
from ack_secrets_provider.core.server.driver_client import (
    PodRef,
    RunningProvider,
    driver_attributes,
    files_of,
    running_provider,
)
from ack_secrets_provider.core.settings import ProviderSettings

# the module-scoped world and the autouse reset before every test (pytest fixtures)
env, fresh = auth_world.env, auth_world.fresh

POD_A = PodRef(name="app-a-0", namespace="team-a", service_account="app-a")
POD_B = PodRef(name="app-b-0", namespace="team-b", service_account="app-b")


# --- through the socket: a driver's Mount ------------------------------------------------------

def attributes(secret: str, *, pod: PodRef = POD_A, pod_identity: bool = False,
               token: str | None = None, extra: str = "") -> str:
    parameters = {"objects": f"- {{objectName: {secret}, objectType: kms, objectAlias: out}}\n"
                             + extra}
    volume = {"usePodServiceAccountToken": "true"} if pod_identity else None
    tokens = {"sts.aliyuncs.com": token} if token else None
    return driver_attributes(parameters, pod=pod, volume_attributes=volume, tokens=tokens)


def mount_ok(provider: RunningProvider, secret: str, **kwargs: Any) -> None:
    secrets = kwargs.pop("secrets", None)
    response = provider.mount(attributes(secret, **kwargs),
                              secrets=json.dumps(secrets) if secrets else "null")
    assert files_of(response) == {"out": SECRETS[secret].encode()}


def mount_error(provider: RunningProvider, secret: str, **kwargs: Any) -> grpc.RpcError:
    secrets = kwargs.pop("secrets", None)
    with pytest.raises(grpc.RpcError) as info:
        provider.mount(attributes(secret, **kwargs),
                       secrets=json.dumps(secrets) if secrets else "null")
    return info.value


# --- at the credential host: CredentialHost.resolve, then the KMS SDK -----------------------------

def context(env: AuthWorld, settings: ProviderSettings, *, namespace: str = "team-a",
            sa: str = "app-a", pod_identity: bool = False, token: str | None = None,
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
    host = env.host  # its identity cache, metrics and Kubernetes client; settings of the test's
    return CredentialContext(request, settings, Deadline.after(30), host.metrics, host.identities,
                             host.kube)


def kms_get(env: AuthWorld, identity: Identity, name: str) -> str:
    client = KmsClient(Config(endpoint=env.emulator.http_address, protocol="http",
                              credential=identity.credential, region_id="cn-hangzhou"))
    response = client.get_secret_value(kms_models.GetSecretValueRequest(secret_name=name))
    return str(response.body.secret_data)


# --- pod RRSA -------------------------------------------------------------------------------------

@pytest.mark.parametrize("token_in", ["attributes", "secrets"])
def test_pod_rrsa(env: AuthWorld, tmp_path: Path, token_in: str) -> None:
    token = env.token("team-a", "app-a")
    settings = env.settings({**OIDC_ENV, **NO_ECS})
    with running_provider(settings, tmp_path) as provider:
        if token_in == "attributes":
            mount_ok(provider, "app-a/db", pod_identity=True, token=token)
        else:  # the driver's tokens in the nodePublishSecretRef data, not in the attributes
            tokens = json.dumps({"sts.aliyuncs.com": {
                "token": token, "expirationTimestamp": "2099-01-01T00:00:00Z"}})
            mount_ok(provider, "app-a/db", pod_identity=True, secrets={ATTR_SA_TOKENS: tokens})
        # the role's allow-list applies: the pod may not read what its role may not
        denied = mount_error(provider, "provider/db", pod_identity=True, token=token)
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "kms:GetSecretValue" in denied.details() and token not in denied.details()
    counters = env.counters()
    assert counters["by_api"] == {"sts.AssumeRoleWithOIDC": 1, "kms.GetSecretValue": 2}
    assert counters["by_principal"] == {ROLE_A: 2}
    assert env.kube.calls == 1


def test_pod_rrsa_at_the_host(env: AuthWorld) -> None:
    settings = env.settings({**OIDC_ENV, **NO_ECS})
    identity = env.host.resolve(context(env, settings, pod_identity=True,
                                        token=env.token("team-a", "app-a")))
    assert identity.key.mode == "pod-rrsa" and identity.key.subject == "team-a/app-a"
    assert identity.key.role_arn == ROLE_A and identity.provider_level is False
    assert kms_get(env, identity, "app-a/db") == "pw-a"
    with pytest.raises(ClientException) as denied:
        kms_get(env, identity, "provider/db")
    assert denied.value.code == "Forbidden.NoPermission"
    assert env.sts.issued[-1] == ("AssumeRoleWithOIDC", ROLE_A, "ack-team-a-app-a")


def _alg_none(token: str) -> str:
    """The same claims with `alg: none` and no signature."""
    import base64

    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').decode().rstrip("=")
    return f"{header}.{token.split('.')[1]}."


def test_a_cached_pod_credential_serves_only_the_token_that_obtained_it(env: AuthWorld) -> None:
    """After a good mount, the same pod presenting an expired, a wrongly signed or an unsigned
    token gets no credential: the cache is keyed by the token's digest, an expired token is
    refused before any lookup. The bad tokens claim the same pod (same subject, expiry)."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    settings = env.settings({**OIDC_ENV, **NO_ECS})
    good = env.token("team-a", "app-a")
    first = env.host.resolve(context(env, settings, pod_identity=True, token=good))
    assert kms_get(env, first, "app-a/db") == "pw-a"
    assert env.host.resolve(context(env, settings, pod_identity=True, token=good)) is first
    assert env.api("sts.AssumeRoleWithOIDC") == 1

    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    bad = {
        "expired": env.token("team-a", "app-a", expires_in=-60),
        "wrongly signed": env.token("team-a", "app-a", key=forger),
        "alg none": _alg_none(good),
    }
    for name, token in bad.items():
        with pytest.raises(ProviderError) as refused:
            env.host.resolve(context(env, settings, pod_identity=True, token=token))
        assert refused.value.code.name in ("UNAUTHENTICATED", "PERMISSION_DENIED"), name
    # the expired token never reached STS; STS refused the two others
    assert env.api("sts.AssumeRoleWithOIDC") == 3
    assert env.host.identities._building == {}  # failed builds leave no lock behind


def test_a_pod_token_goes_to_sts_without_touching_the_file_system(env: AuthWorld) -> None:
    """docs/migration.md, defect 6: the official provider wrote each pod token to a temp file it
    never deleted; here a pod-level mount opens no file for writing and creates none."""
    settings = env.settings({**OIDC_ENV, **NO_ECS})
    with files_written() as written:
        identity = env.host.resolve(context(env, settings, pod_identity=True,
                                            token=env.token("team-a", "app-a")))
        assert kms_get(env, identity, "app-a/db") == "pw-a"
    assert env.api("sts.AssumeRoleWithOIDC") == 1
    assert written == []


def test_pod_rrsa_uses_account_and_cluster_ids(env: AuthWorld) -> None:
    settings = env.settings({"ALICLOUD_ACCOUNT_ID": ACCOUNT, "ALICLOUD_CLUSTER_ID": "c1",
                             **NO_ECS})
    identity = env.host.resolve(context(env, settings, namespace="team-b", sa="app-b",
                                        pod_identity=True, token=env.token("team-b", "app-b")))
    assert kms_get(env, identity, "app-b/db") == "pw-b"


# --- provider RRSA --------------------------------------------------------------------------------

def test_provider_rrsa_with_a_token_file(env: AuthWorld, tmp_path: Path) -> None:
    env.write_provider_token()
    settings = env.settings({**ROLE_ENV, **OIDC_ENV, **NO_ECS})
    with running_provider(settings, tmp_path) as provider:
        mount_ok(provider, "provider/db")
    counters = env.counters()
    assert counters["by_api"] == {"sts.AssumeRoleWithOIDC": 1, "kms.GetSecretValue": 1}
    assert counters["by_principal"] == {ROLE_PROVIDER: 1}


def test_provider_rrsa_at_the_host_and_token_rotation(env: AuthWorld) -> None:
    env.write_provider_token()
    settings = env.settings({**ROLE_ENV, **OIDC_ENV, **NO_ECS})
    identity = env.host.resolve(context(env, settings))
    assert identity.key.mode == "provider-rrsa" and identity.provider_level
    assert kms_get(env, identity, "provider/db") == "pw-provider"
    # kubelet rotates the file; the old token expires. The next refresh must read the new one.
    env.write_provider_token(expires_in=7200)
    env.host.identities.clear()
    env.host.resolve(context(env, settings))
    env.write_provider_token(expires_in=-10)  # an expired token: STS refuses it
    env.clock.advance(4000)
    with pytest.raises(ProviderError) as refused:
        env.host.resolve(context(env, settings))
    assert "Expired" in str(refused.value)
    assert env.token(*PROVIDER_SA)[:20] not in str(refused.value)


def test_provider_rrsa_without_token_file_says_rrsa_enable(env: AuthWorld) -> None:
    settings = env.settings({**ROLE_ENV, **OIDC_ENV, **NO_ECS},
                            rrsa_token_file="/nonexistent/token")
    with pytest.raises(FailedPrecondition, match="rrsa.enable=true"):
        env.host.resolve(context(env, settings))
    # an empty token file names the flag and the Helm value too, and nothing reaches STS
    env.token_file.write_text("\n")
    env.host.identities.clear()
    with pytest.raises(FailedPrecondition) as refused:
        env.host.resolve(context(env, env.settings({**ROLE_ENV, **OIDC_ENV, **NO_ECS})))
    assert (f"the token file {env.token_file} (--rrsa-token-file) is empty; with "
            "rrsa.enable=true") in refused.value.message
    assert env.api("sts.AssumeRoleWithOIDC") == 0
    # a file that is not UTF-8 text (a binary named by mistake) likewise: it was a
    # UnicodeDecodeError, 'a credential plugin failed unexpectedly'
    env.token_file.write_bytes(b"\xff\xfe\x00token\n")
    with pytest.raises(FailedPrecondition) as refused:
        env.host.resolve(context(env, env.settings({**ROLE_ENV, **OIDC_ENV, **NO_ECS})))
    assert (f"the token file {env.token_file} (--rrsa-token-file) is not a token (not UTF-8 "
            "text); with rrsa.enable=true") in refused.value.message
    assert env.api("sts.AssumeRoleWithOIDC") == 0
    # a file far larger than any token (a log, /dev/zero named by mistake) is refused after
    # reading a bounded part of it, not read to its end (/dev/zero has none)
    env.token_file.write_text("a" * (MAX_TOKEN_CHARS + 1))
    with pytest.raises(FailedPrecondition) as refused:
        env.host.resolve(context(env, env.settings({**ROLE_ENV, **OIDC_ENV, **NO_ECS})))
    assert (f"the token file {env.token_file} (--rrsa-token-file) is not a token (larger than "
            f"{MAX_TOKEN_CHARS:,} characters); with rrsa.enable=true") in refused.value.message
    assert env.api("sts.AssumeRoleWithOIDC") == 0
    # two words (a note or a kubeconfig named by mistake): the same rule as --kube-token-file
    env.token_file.write_text("header.payload.sig\nsecond-line\n")
    with pytest.raises(FailedPrecondition) as refused:
        env.host.resolve(context(env, env.settings({**ROLE_ENV, **OIDC_ENV, **NO_ECS})))
    assert (f"the token file {env.token_file} (--rrsa-token-file) is not a token (a bearer "
            "token is one word of ASCII characters); with rrsa.enable=true") \
        in refused.value.message
    assert "second-line" not in refused.value.message
    assert env.api("sts.AssumeRoleWithOIDC") == 0


# --- AccessKey + AssumeRole -----------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["provider-rrsa", "ak-assume-role"])
def test_the_session_expiration_is_the_lifetime_sts_issues(env: AuthWorld, mode: str) -> None:
    """docs/authentication.md: ALICLOUD_ROLE_SESSION_EXPIRATION is in seconds, default 3600;
    migration.md (credentials-session-expiration): it applies to provider RRSA too, where the
    official provider ignored it."""
    env.write_provider_token()
    base = {**ROLE_ENV, **NO_ECS, **(OIDC_ENV if mode == "provider-rrsa" else AK_ENV)}
    for environ, lifetime in ((base, 3600), ({**base, "ALICLOUD_ROLE_SESSION_EXPIRATION": "1800"},
                                             1800)):
        identity = env.host.resolve(context(env, env.settings(environ)))
        assert identity.key.mode == mode
        expiration = _providers.provider_of(identity).ensure_fresh().expiration
        assert expiration is not None and expiration - env.clock() == pytest.approx(lifetime,
                                                                                    abs=5)


def test_access_key_and_assume_role(env: AuthWorld, tmp_path: Path) -> None:
    settings = env.settings({**AK_ENV, **ROLE_ENV, "ALICLOUD_ROLE_SESSION_NAME": "e2e-session",
                             **NO_ECS})
    with running_provider(settings, tmp_path) as provider:
        mount_ok(provider, "provider/db")
        # the AccessKey's own principal is not what reads KMS
        assert mount_error(provider, "user/db").code() == grpc.StatusCode.PERMISSION_DENIED
    counters = env.counters()
    assert counters["by_api"] == {"sts.AssumeRole": 1, "kms.GetSecretValue": 2}
    assert counters["by_principal"] == {"ci-user": 1, ROLE_PROVIDER: 2}  # ci-user signed STS


def test_ak_assume_role_at_the_host(env: AuthWorld) -> None:
    settings = env.settings({**AK_ENV, **ROLE_ENV, "ALICLOUD_ROLE_SESSION_NAME": "my-session",
                             "ALICLOUD_ROLE_SESSION_EXPIRATION": "1800", **NO_ECS})
    identity = env.host.resolve(context(env, settings))
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
        env.host.resolve(context(env, settings))
    assert err.value.reason == "Unauthenticated"
    assert "wrong-secret-xyz" not in str(err.value)
    # docs/authentication.md: the identity is named, its AccessKey id only truncated (LTAI5t…)
    assert f"AssumeRole into {ROLE_PROVIDER} with AccessKey {USER_KEY[:6]}…" in str(err.value)
    assert USER_KEY not in str(err.value)


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_the_most_verbose_logs_and_the_metrics_of_real_credentials_hold_none_of_them(
    env: AuthWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, log_format: str
) -> None:
    """tests/test_logs.py mounts with a backend that needs no credential; here every credential
    really travels: the pod token to STS, the temporary credential STS issues and the
    nodePublishSecretRef AccessKey to the KMS SDK, which signs with them; refused ones too (a
    forged token, a wrong secret). At -v=10 (the SDK loggers' most verbose) none of them, nor a
    part of the token, reaches the log output or a metric (labels included)."""
    import io
    import logging

    from cryptography.hazmat.primitives.asymmetric import rsa

    from ack_secrets_provider.core.observability.logs import SDK_LOGGERS, configure

    issued: list[str] = []
    store = env.emulator.credentials
    issue = store.issue_temporary

    def recorded(*args: Any, **kwargs: Any) -> Any:
        cred = issue(*args, **kwargs)
        issued.extend((cred.access_key_secret, cred.security_token))
        return cred

    monkeypatch.setattr(store, "issue_temporary", recorded)
    token = env.token("team-a", "app-a")
    forged = env.token("team-a", "app-a",
                       key=rsa.generate_private_key(public_exponent=65537, key_size=2048))
    wrong_secret = "wrong-nps-secret-value-2"
    root, names = logging.getLogger(), ("ack_secrets_provider", *SDK_LOGGERS)
    saved = (root.handlers[:], root.level,
             {name: (logging.getLogger(name).level, logging.getLogger(name).propagate)
              for name in names})
    stream = io.StringIO()
    try:
        configure(10, log_format, stream)
        with running_provider(env.settings({**OIDC_ENV, **NO_ECS}), tmp_path) as provider:
            mount_ok(provider, "app-a/db", pod_identity=True, token=token)
            mount_error(provider, "provider/db", pod_identity=True, token=token)  # denied
            mount_error(provider, "app-a/db", pod_identity=True, token=forged)
            mount_ok(provider, "shared/db", secrets=NPS)
            mount_error(provider, "shared/db",
                        secrets={"access_key": NPS_KEY, "access_secret": wrong_secret})
            scraped = provider.app.metrics.exposition()[2].decode()
    finally:
        root.handlers[:], root.level = saved[0], saved[1]
        for name, (level, propagate) in saved[2].items():
            logging.getLogger(name).setLevel(level)
            logging.getLogger(name).propagate = propagate
    output = stream.getvalue()
    assert output.count("mount succeeded") == 2 and output.count("mount failed") == 3
    assert "mounted versions" in output  # the debug level is really on
    assert len(issued) == 2  # STS issued one temporary credential (cached for the 2nd mount)
    header, payload, signature = token.split(".")
    credentials = {"the pod token's payload": payload, "its signature": signature,
                   "the forged token's signature": forged.split(".")[2],
                   "the nodePublishSecretRef secret": NPS_SECRET, "a wrong secret": wrong_secret,
                   "STS's AccessKeySecret": issued[0], "STS's SecurityToken": issued[1]}
    assert 'mode="pod-rrsa"' in scraped  # the credential paths did record metrics
    for what, value in credentials.items():
        assert value not in output, f"{what} leaked into the {log_format} logs"
        assert value not in scraped, f"{what} leaked into the metrics"


# --- nodePublishSecretRef -------------------------------------------------------------------------

def test_node_publish_secret_ref_keys_in_any_case(env: AuthWorld, tmp_path: Path) -> None:
    with running_provider(env.settings(NO_ECS), tmp_path) as provider:
        mount_ok(provider, "shared/db", secrets=NPS)
        mount_ok(provider, "shared/db", secrets={"access_key": NPS_KEY,
                                                 "access_secret": NPS_SECRET})
    counters = env.counters()
    assert counters["by_api"] == {"kms.GetSecretValue": 2}
    assert counters["by_principal"] == {"nps-user": 2}


def test_node_publish_secret_at_the_host(env: AuthWorld) -> None:
    memo = _providers.access_key_identity_key.cache_info().currsize
    identity = env.host.resolve(context(env, env.settings(NO_ECS), secrets=NPS))
    assert identity.key.mode == "node-publish-secret" and identity.key.access_key_id == NPS_KEY
    assert kms_get(env, identity, "shared/db") == "pw-shared"
    assert env.api("sts.AssumeRole") == 0
    # the pod's Secret is not kept by the process-wide memo of the environment's AccessKey
    assert _providers.access_key_identity_key.cache_info().currsize == memo


# --- static AccessKey -----------------------------------------------------------------------------

def test_static_access_key(env: AuthWorld, tmp_path: Path) -> None:
    with running_provider(env.settings({**AK_ENV, **NO_ECS}), tmp_path) as provider:
        mount_ok(provider, "user/db")
    assert env.counters()["by_principal"] == {"ci-user": 1}


def test_static_access_key_with_a_wrong_secret_is_unauthenticated(
    env: AuthWorld, tmp_path: Path
) -> None:
    settings = env.settings({"ACCESS_KEY_ID": USER_KEY, "SECRET_ACCESS_KEY": "not-the-secret-9",
                             **NO_ECS})
    with running_provider(settings, tmp_path) as provider:
        error = mount_error(provider, "user/db")
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "not-the-secret-9" not in error.details()


def test_static_ak_at_the_host(env: AuthWorld) -> None:
    identity = env.host.resolve(context(env, env.settings({**AK_ENV, **NO_ECS})))
    assert identity.key.mode == "static-ak"
    assert kms_get(env, identity, "user/db") == "pw-user"
    assert env.emulator.counters.snapshot()["by_principal"] == {"ci-user": 1}


# --- ECS RAM role (instance metadata) -------------------------------------------------------------

def test_ecs_ram_role_from_metadata_with_imdsv2(env: AuthWorld, tmp_path: Path) -> None:
    """The metadata emulator refuses IMDSv1 (require_v2 in the seed): success means v2."""
    with running_provider(env.settings({}), tmp_path) as provider:
        mount_ok(provider, "node/db")
    counters = env.counters()
    assert counters["by_api"].get("metadata./latest/api/token", 0) >= 1
    assert counters["by_api"]["kms.GetSecretValue"] == 1
    assert counters["by_principal"] == {NODE_ROLE_ARN: 1}


@pytest.mark.parametrize("require_v2", [False, True])
def test_ecs_ram_role_at_the_host_imdsv2(env: AuthWorld, require_v2: bool) -> None:
    env.metadata.configure({"require_v2": require_v2})  # `fresh` restores the seed's
    v1_before = env.metadata.v1_requests
    identity = env.host.resolve(context(env, env.settings()))
    assert identity.key.mode == "ecs-ram-role" and identity.key.role_arn == NODE_ROLE
    assert kms_get(env, identity, "node/db") == "pw-node"
    assert env.api("metadata./latest/api/token") >= 1
    assert env.metadata.v1_requests == v1_before  # IMDSv2 was used


def test_ecs_imdsv1_fallback_and_switch(env: AuthWorld) -> None:
    # an old metadata service: no IMDSv2 and so no way to require it (`fresh` restores both)
    env.metadata.configure({"v2_enabled": False, "require_v2": False})
    identity = env.host.resolve(context(env, env.settings()))
    assert kms_get(env, identity, "node/db") == "pw-node"
    assert env.metadata.v1_requests > 0
    env.host.identities.clear()
    with pytest.raises(FailedPrecondition, match="IMDSv2"):
        env.host.resolve(context(env, env.settings(imds_v1_fallback=False)))


def test_ecs_ram_role_named_by_the_environment_that_the_node_lacks(env: AuthWorld) -> None:
    """ALIBABA_CLOUD_ECS_METADATA naming a role the node does not have is named with the
    variable and its fix (it read "the node has no RAM role ... attach a RAM role", the wrong
    fix: the node has one)."""
    with pytest.raises(FailedPrecondition) as refused:
        env.host.resolve(context(env, env.settings({"ALIBABA_CLOUD_ECS_METADATA": "typo-role"})))
    assert refused.value.message.startswith(
        "ECS RAM role typo-role: the metadata service at ")
    assert ("has no credential for the role that ALIBABA_CLOUD_ECS_METADATA names (it answered "
            "404); set ALIBABA_CLOUD_ECS_METADATA to the RAM role attached to the worker nodes"
            ) in refused.value.message
    assert env.host.resolve(context(env, env.settings(
        {"ALIBABA_CLOUD_ECS_METADATA": NODE_ROLE}))).key.role_arn == NODE_ROLE


def test_ecs_ram_role_over_an_https_metadata_override(env: AuthWorld, tmp_path: Path) -> None:
    """An https metadata endpoint override is trusted with --sts-ca-file; a CA file that holds
    no PEM certificate fails the mount with FAILED_PRECONDITION naming the file and the flag
    (it escaped as a bare SSLError: "a credential plugin failed unexpectedly (SSLError)")."""
    assert env.emulator.https_url is not None
    overrides = EndpointOverrides.parse(
        [f"sts={env.emulator.https_url}", f"metadata={env.emulator.https_url}"], SERVICES)
    identity = env.host.resolve(context(env, env.settings(endpoint_overrides=overrides)))
    assert identity.key.mode == "ecs-ram-role" and identity.key.role_arn == NODE_ROLE
    not_pem = tmp_path / "ca.pem"
    not_pem.write_text("not a certificate\n")
    env.host.identities.clear()
    with pytest.raises(FailedPrecondition) as refused:
        env.host.resolve(context(env, env.settings(endpoint_overrides=overrides,
                                                   sts_ca_file=str(not_pem))))
    assert (f"the CA bundle {not_pem} (--sts-ca-file) trusted for the instance metadata service "
            f"at {env.emulator.https_url} cannot be loaded (NO_CERTIFICATE_OR_CRL_FOUND); an "
            "https metadata endpoint override is trusted with --sts-ca-file") \
        in refused.value.message


# --- cross-account role ---------------------------------------------------------------------------

def test_cross_account_role_per_object(env: AuthWorld, tmp_path: Path) -> None:
    settings = env.settings({**AK_ENV, **ROLE_ENV, **NO_ECS})
    extra = (f"- {{objectName: cross/db, objectAlias: crossed,"
             f" crossAccountRoleArn: '{ROLE_CROSS}'}}\n")
    with running_provider(settings, tmp_path) as provider:
        response = provider.mount(attributes("provider/db", extra=extra))
    assert files_of(response) == {"out": b"pw-provider", "crossed": b"pw-cross"}
    counters = env.counters()
    assert counters["by_api"] == {"sts.AssumeRole": 2, "kms.GetSecretValue": 2}
    # ci-user → provider role (STS); provider role → cross role (STS) and its own KMS read;
    # the cross-account role reads only its object
    assert counters["by_principal"] == {"ci-user": 1, ROLE_PROVIDER: 2, ROLE_CROSS: 1}
    assert counters["by_secret"]["kms/cross/db"] == 1


def test_cross_account_on_top_of_ak_assume_role(env: AuthWorld) -> None:
    ctx = context(env, env.settings({**AK_ENV, **ROLE_ENV, **NO_ECS}))
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
    ctx = context(env, settings, pod_identity=True, token=env.token("team-a", "app-a"))
    base = env.host.resolve(ctx)
    with pytest.raises(PermissionDenied, match="trust"):
        env.host.assume_role(base, ROLE_CROSS, ctx)


# --- chain order ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("case", "secret", "principal", "sts_api"), [
    ("pod-identity", "app-a/db", ROLE_A, "sts.AssumeRoleWithOIDC"),
    ("provider-rrsa", "provider/db", ROLE_PROVIDER, "sts.AssumeRoleWithOIDC"),
    ("ak-assume-role", "provider/db", ROLE_PROVIDER, "sts.AssumeRole"),
    ("node-publish-secret", "shared/db", "nps-user", None),
    ("static-ak", "user/db", "ci-user", None),
    ("ecs-ram-role", "node/db", NODE_ROLE_ARN, None),
])
def test_chain_order_first_applicable_mode_wins(
    env: AuthWorld, tmp_path: Path, case: str, secret: str, principal: str, sts_api: str | None
) -> None:
    """Each row removes what made the previous row's mode apply; everything after it is still
    configured. The principal that reached KMS shows which mode won."""
    env.write_provider_token()
    order = ["pod-identity", "provider-rrsa", "ak-assume-role", "node-publish-secret",
             "static-ak", "ecs-ram-role"]
    later = order[order.index(case):]
    environ: dict[str, str] = {}
    if {"provider-rrsa", "ak-assume-role"} & set(later):
        environ.update(ROLE_ENV)
    if {"pod-identity", "provider-rrsa"} & set(later):
        environ.update(OIDC_ENV)
    if "static-ak" in later:
        environ.update(AK_ENV)  # also the key of AK + AssumeRole when a role is set
    secrets = NPS if "node-publish-secret" in later else None
    kwargs: dict[str, Any] = {"secrets": secrets}
    if case == "pod-identity":
        kwargs.update(pod_identity=True, token=env.token("team-a", "app-a"))
    with running_provider(env.settings(environ), tmp_path) as provider:
        mount_ok(provider, secret, **kwargs)
    counters = env.counters()
    kms_signers = dict(counters["by_principal"])
    if case == "ak-assume-role":
        assert kms_signers.pop("ci-user") == 1  # it signed AssumeRole, not the KMS call
    assert kms_signers == {principal: 1}
    sts_calls = {k: v for k, v in counters["by_api"].items() if k.startswith("sts.")}
    assert sts_calls == ({sts_api: 1} if sts_api else {})
    metadata_calls = [k for k in counters["by_api"] if k.startswith("metadata.")]
    assert bool(metadata_calls) == (case == "ecs-ram-role")


#: every provider-level mode configured at once (ECS metadata is on: NO_ECS is not in it)
ALL_PROVIDER_ENV = {**AK_ENV, **ROLE_ENV, **OIDC_ENV}


def test_chain_order_when_everything_applies(env: AuthWorld) -> None:
    env.write_provider_token()
    nps = {"access_key": NPS_KEY, "access_secret": NPS_SECRET}
    full = env.settings(ALL_PROVIDER_ENV)
    token = env.token("team-a", "app-a")
    # pod identity requested: it wins over everything
    assert env.host.resolve(context(env, full, pod_identity=True, token=token, secrets=nps)
                            ).key.mode == "pod-rrsa"
    # provider RRSA before AccessKey + AssumeRole and the nodePublishSecretRef
    assert env.host.resolve(context(env, full, secrets=nps)).key.mode == "provider-rrsa"
    no_oidc = {k: v for k, v in ALL_PROVIDER_ENV.items() if k != "ALICLOUD_OIDC_PROVIDER_ARN"}
    assert env.host.resolve(context(env, env.settings(no_oidc), secrets=nps)
                            ).key.mode == "ak-assume-role"
    assert env.host.resolve(context(env, env.settings(AK_ENV), secrets=nps)
                            ).key.mode == "node-publish-secret"
    assert env.host.resolve(context(env, env.settings(AK_ENV))).key.mode == "static-ak"
    assert env.host.resolve(context(env, env.settings())).key.mode == "ecs-ram-role"
    with pytest.raises(FailedPrecondition, match="no credential is configured"):
        env.host.resolve(context(env, env.settings(NO_ECS)))


def test_the_librarys_default_chain_is_never_used(
    env: AuthWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/authentication.md: the variables and files alibabacloud-credentials' default chain
    reads (ALIBABA_CLOUD_*, a credentials file) are ignored, in the environment snapshot and in
    the process's own environment alike: with only them, no credential is configured and
    nothing is sent (a default chain would pick the AccessKey user, who may read user/db)."""
    env.write_provider_token()
    ini = tmp_path / "credentials.ini"
    ini.write_text(f"[default]\ntype = access_key\naccess_key_id = {USER_KEY}\n"
                   f"access_key_secret = {auth_world.USER_SECRET}\n")
    library = {
        "ALIBABA_CLOUD_ACCESS_KEY_ID": USER_KEY,
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET": auth_world.USER_SECRET,
        "ALIBABA_CLOUD_CREDENTIALS_FILE": str(ini), "ALIBABA_CLOUD_PROFILE": "default",
        "ALIBABA_CLOUD_ROLE_ARN": ROLE_PROVIDER,
        "ALIBABA_CLOUD_OIDC_PROVIDER_ARN": auth_world.OIDC,
        "ALIBABA_CLOUD_OIDC_TOKEN_FILE": str(env.token_file),
    }
    for name, value in library.items():
        monkeypatch.setenv(name, value)
    with running_provider(env.settings({**library, **NO_ECS}), tmp_path / "sock") as provider:
        error = mount_error(provider, "user/db")
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "no credential is configured" in error.details()
    assert env.counters()["total"] == 0


# --- no silent fallback, namespace allow-list -----------------------------------------------------

@pytest.mark.parametrize(("case", "code", "fragment"), [
    ("no-token", grpc.StatusCode.FAILED_PRECONDITION, "tokenRequests"),
    ("no-annotation", grpc.StatusCode.FAILED_PRECONDITION,
     "kubectl annotate serviceaccount -n team-c plain"),
    ("sts-refuses", grpc.StatusCode.PERMISSION_DENIED, "trust"),
    ("not-a-jwt", grpc.StatusCode.UNAUTHENTICATED, "not a ServiceAccount token"),
    ("nested-claims", grpc.StatusCode.UNAUTHENTICATED, "not a ServiceAccount token"),
])
def test_pod_identity_missing_piece_fails_without_using_another_identity(
    env: AuthWorld, tmp_path: Path, case: str, code: grpc.StatusCode, fragment: str
) -> None:
    """Every provider-level mode is configured and would work; none may be used instead."""
    env.write_provider_token()
    pod, token = POD_A, None
    if case == "no-annotation":
        pod = PodRef(name="plain-0", namespace="team-c", service_account="plain")
        token = env.token("team-c", "plain")
    elif case == "sts-refuses":  # role A does not trust team-a/other
        env.kube.add("team-a", "other", {kube.ROLE_ANNOTATION: ROLE_A})
        pod = PodRef(name="other-0", namespace="team-a", service_account="other")
        token = env.token("team-a", "other")
    elif case == "not-a-jwt":  # e.g. injected through volumeAttributes without tokenRequests
        token = "opaque-token-value-0123456789"
    elif case == "nested-claims":  # claims nested past the JSON decoder's recursion limit: a
        # RecursionError escaped the plugin, an internal error
        token = f"e30.{base64.urlsafe_b64encode(b'[' * 5000).decode().rstrip('=')}.sig"
    settings = env.settings({**AK_ENV, **ROLE_ENV, **OIDC_ENV})
    with running_provider(settings, tmp_path) as provider:
        error = mount_error(provider, "shared/db", pod=pod, pod_identity=True, token=token,
                            secrets=NPS)
    assert error.code() == code, error.details()
    assert fragment in error.details()
    if case == "sts-refuses":  # docs/authentication.md, How to verify: it names the identity
        assert f"pod-level RRSA for serviceaccount team-a/other (role {ROLE_A})" in error.details()
    if token:
        assert token not in error.details()
    counters = env.counters()
    assert not any(api.startswith(("kms.", "metadata.")) for api in counters["by_api"])
    assert counters["by_api"].get("sts.AssumeRole", 0) == 0
    assert counters["by_principal"] == {}  # no identity signed anything


@pytest.mark.parametrize("case", ["no-token", "no-annotation", "no-serviceaccount",
                                  "sts-refuses", "wrong-subject", "no-oidc-provider"])
def test_pod_identity_missing_piece_fails_at_the_host(env: AuthWorld, case: str) -> None:
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
        env.host.resolve(context(env, settings, namespace=namespace, sa=sa, pod_identity=True,
                                 token=token))
    if token:
        assert token not in str(err.value)
    snapshot = env.emulator.counters.snapshot()
    assert snapshot["by_api"].get("kms.GetSecretValue", 0) == 0
    assert snapshot["by_api"].get("sts.AssumeRole", 0) == 0  # no provider identity was made
    assert not any(k.startswith("metadata.") for k in snapshot["by_api"])


def test_namespace_allow_list_for_provider_identities(env: AuthWorld, tmp_path: Path) -> None:
    settings = env.settings({**AK_ENV, **OIDC_ENV, **NO_ECS},
                            provider_identity_namespaces=frozenset({"team-a"}))
    with running_provider(settings, tmp_path) as provider:
        denied = mount_error(provider, "user/db", pod=POD_B)
        assert denied.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "allow-list" in denied.details() and "team-b" in denied.details()
        assert ("(--provider-identity-namespaces / Helm value providerIdentity.allowedNamespaces)"
                in denied.details())  # docs/authentication.md: PERMISSION_DENIED naming the flag
        assert env.counters()["total"] == 0
        mount_ok(provider, "user/db", pod=POD_A)  # inside the list: the same mount works
        # the pod's own identity is not restricted by the provider's allow-list
        mount_ok(provider, "app-b/db", pod=POD_B, pod_identity=True,
                 token=env.token("team-b", "app-b"))
    assert env.counters()["by_principal"] == {"ci-user": 1, ROLE_B: 1}


# --- one STS call per credential lifetime ---------------------------------------------------------

@pytest.mark.parametrize("mode", ["pod-rrsa", "ak-assume-role"])
def test_one_sts_call_over_100_mounts_then_one_more_near_expiry(
    env: AuthWorld, tmp_path: Path, mode: str
) -> None:
    if mode == "pod-rrsa":
        settings = env.settings({**OIDC_ENV, **NO_ECS})
        token = env.token("team-a", "app-a")
        kwargs: dict[str, Any] = {"pod_identity": True, "token": token}
        secret, api, principal = "app-a/db", "sts.AssumeRoleWithOIDC", ROLE_A
    else:
        settings = env.settings({**AK_ENV, **ROLE_ENV, **NO_ECS})
        kwargs = {}
        secret, api, principal = "provider/db", "sts.AssumeRole", ROLE_PROVIDER
    with running_provider(settings, tmp_path, clock=env.clock) as provider:
        for _ in range(100):
            mount_ok(provider, secret, **kwargs)
        assert env.api(api) == 1
        assert env.api("kms.GetSecretValue") == 100
        assert env.counters()["by_principal"][principal] == 100
        if mode == "pod-rrsa":
            assert env.kube.calls == 1  # the role annotation is cached too
        env.clock.advance(3000)  # of a 3600 s credential: time to refresh
        for _ in range(3):
            mount_ok(provider, secret, **kwargs)
    assert env.api(api) == 2


@pytest.mark.parametrize("mode", ["pod-rrsa", "ak-assume-role", "ecs-ram-role"])
def test_one_sts_call_per_lifetime_at_the_host(env: AuthWorld, mode: str) -> None:
    if mode == "pod-rrsa":
        settings = env.settings({**OIDC_ENV, **NO_ECS})
        api, secret, value = "sts.AssumeRoleWithOIDC", "app-a/db", "pw-a"
        token = env.token("team-a", "app-a")  # kubelet sends the same token until it rotates it

        def make() -> CredentialContext:
            return context(env, settings, pod_identity=True, token=token)
    elif mode == "ak-assume-role":
        settings = env.settings({**AK_ENV, **ROLE_ENV, **NO_ECS})
        api, secret, value = "sts.AssumeRole", "provider/db", "pw-provider"

        def make() -> CredentialContext:
            return context(env, settings)
    else:
        settings = env.settings()
        api = f"metadata./latest/meta-data/ram/security-credentials/{NODE_ROLE}"
        secret, value = "node/db", "pw-node"

        def make() -> CredentialContext:
            return context(env, settings)
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
    env.clock.advance(3000)
    env.emulator.credentials.expire(old)
    if mode == "ecs-ram-role":
        env.metadata.configure({"credential_duration": 3600})  # the service rotates it too
    for _ in range(5):
        identity = env.host.resolve(make())
        assert kms_get(env, identity, secret) == value
    assert env.api(api) == 2
    assert identity.credential.get_credential().access_key_id != old


def test_sts_calls_and_credential_refreshes_are_counted(env: AuthWorld, tmp_path: Path) -> None:
    """The STS and refresh metrics move with real STS calls (and only with them)."""
    token = env.token("team-a", "app-a")
    settings = env.settings({**OIDC_ENV, **NO_ECS})
    with running_provider(settings, tmp_path) as provider:
        for _ in range(3):  # one STS call for the identity's lifetime, not one per mount
            mount_ok(provider, "app-a/db", pod_identity=True, token=token)
        registry = provider.metrics.registry
        assert registry.get_sample_value(
            "ack_secrets_provider_sts_calls_total",
            {"api": "AssumeRoleWithOIDC", "result": "ok"}) == 1
        assert registry.get_sample_value(
            "ack_secrets_provider_credential_refreshes_total",
            {"mode": "pod-rrsa", "result": "ok"}) == 1
    assert env.counters()["by_api"]["sts.AssumeRoleWithOIDC"] == 1


# --- two pods, two roles, one secret, any interleaving --------------------------------------------

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
            self.env, self.settings, namespace=namespace, sa=sa, pod_identity=True,
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
