"""Unit tests of the credential plugins' pieces: refresh timing, the identity cache, the
ServiceAccount reader, configuration errors, the namespace allow-list, and the STS/metadata
emulator's checks (OIDC token signature/issuer/audience/expiry, IMDSv1 refusal)."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from ack_secrets_provider.auth import _providers, _sts, kube
from ack_secrets_provider.auth.emulator import FakeKubeApi, MetadataEmulator, StsEmulator
from ack_secrets_provider.core.cloud.kube import MAX_TOKEN_CHARS, KubeClient
from ack_secrets_provider.core.emulator import Emulator
from ack_secrets_provider.core.emulator.registry import discover_parts
from ack_secrets_provider.core.emulator.testing import EmulatorHandle
from ack_secrets_provider.core.emulator.tls import generate_chain
from ack_secrets_provider.core.errors import (
    FailedPrecondition,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
)
from ack_secrets_provider.core.mount.spec import parse_mount_request
from ack_secrets_provider.core.plugins.credentials import (
    CredentialContext,
    CredentialHost,
    Identity,
    IdentityCache,
    IdentityKey,
)
from ack_secrets_provider.core.plugins.toolkit import Issued, RefreshingProvider
from ack_secrets_provider.core.plugins.toolkit.refresh import refresh_time
from ack_secrets_provider.core.resilience.deadline import Deadline
from ack_secrets_provider.core.settings import ProviderSettings


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# --- RefreshingProvider -----------------------------------------------------------------------

def test_refresh_once_per_lifetime_with_margin() -> None:
    clock = Clock()
    calls: list[float] = []

    def fetch(timeout: float) -> Issued:
        calls.append(clock.now)
        return Issued(f"AK{len(calls)}", "secret", "token", expiration=clock.now + 900)

    provider = RefreshingProvider("test", fetch, clock=clock)
    for _ in range(50):
        assert provider.get_credentials().get_access_key_id() == "AK1"
    clock.now += 900 * 3 / 4 - 1  # a 900 s credential is refreshed 225 s before expiry
    assert provider.get_credentials().get_access_key_id() == "AK1"
    clock.now += 2
    assert provider.get_credentials().get_access_key_id() == "AK2"
    assert len(calls) == 2


def test_refresh_margin_is_at_most_15_minutes_and_skew_safe() -> None:
    assert refresh_time(Issued("a", "b", expiration=10_000.0 + 3600), 10_000.0) == 10_000 + 2700
    assert refresh_time(Issued("a", "b", expiration=10_000.0 + 86400), 10_000.0) == (
        10_000 + 86400 - 900)
    assert refresh_time(Issued("a", "b", expiration=None), 0.0) == float("inf")
    # looks expired on arrival (clock ahead of the issuer): reused briefly, not refetched per call
    assert refresh_time(Issued("a", "b", expiration=9_000.0), 10_000.0) == 10_030.0


def test_failed_refresh_keeps_a_still_valid_credential_then_raises() -> None:
    clock = Clock()
    fail = False

    def fetch(timeout: float) -> Issued:
        if fail:
            raise Unavailable("sts down")
        return Issued("AK", "secret", "token", expiration=clock.now + 3600)

    provider = RefreshingProvider("test", fetch, clock=clock)
    provider.ensure_fresh()
    fail = True
    clock.now += 3000  # due for refresh, still valid for 600 s
    assert provider.ensure_fresh().access_key_id == "AK"
    clock.now += 590  # 10 s left: not handed out any more
    with pytest.raises(Unavailable):
        provider.ensure_fresh()


def test_concurrent_callers_share_one_refresh() -> None:
    started = threading.Event()
    release = threading.Event()
    calls = 0

    def fetch(timeout: float) -> Issued:
        nonlocal calls
        calls += 1
        started.set()
        assert release.wait(5)
        return Issued("AK", "secret", "token", expiration=None)

    provider = RefreshingProvider("test", fetch)
    threads = [threading.Thread(target=provider.ensure_fresh) for _ in range(16)]
    for thread in threads:
        thread.start()
    assert started.wait(5)
    release.set()
    for thread in threads:
        thread.join(5)
    assert calls == 1


def test_a_refresh_the_sdk_triggers_obeys_the_mount_deadline() -> None:
    """get_credentials() is called by the SDK mid-call, outside our code: the deadline the
    fetcher set for the call (deadline.within) bounds both the wait and the refresh."""

    from ack_secrets_provider.core.errors import DeadlineExceeded
    from ack_secrets_provider.core.resilience.deadline import within

    given: list[float] = []
    started, release = threading.Event(), threading.Event()

    def slow_fetch(timeout: float) -> Issued:
        given.append(timeout)
        started.set()
        release.wait(10)
        return Issued("AK", "secret", "token", expiration=None)

    provider = RefreshingProvider("test", slow_fetch)
    blocker = threading.Thread(target=provider.ensure_fresh)  # a refresh in progress
    blocker.start()
    try:
        assert started.wait(5)
        with within(Deadline.after(0.3)), pytest.raises(DeadlineExceeded):
            provider.get_credentials()
        # the refresh is held until `release`: the caller got its answer without waiting for it
        assert blocker.is_alive() and not release.is_set()
    finally:
        release.set()
        blocker.join(5)

    provider = RefreshingProvider("test", lambda timeout: given.append(timeout) or Issued(
        "AK", "secret", "token", expiration=None))
    with within(Deadline.after(0.5)):
        provider.get_credentials()
    assert given[-1] <= 0.5  # the refresh call itself got the mount's remaining time


def test_identity_cache_forgets_the_locks_of_failed_builds() -> None:
    cache = IdentityCache()

    def failing() -> Identity:
        raise Unauthenticated("refused")

    for i in range(200):
        with pytest.raises(Unauthenticated):
            cache.get_or_create(("bad-token", i), failing)
    assert cache._building == {} and len(cache) == 0


def test_secrets_not_in_repr() -> None:
    issued = Issued("AKID", "the-secret", "the-token", 1.0)
    assert "the-secret" not in repr(issued) and "the-token" not in repr(issued)
    key = IdentityKey("static-ak", access_key_id="AKID123456", secret_digest="d" * 32)
    assert "d" * 32 not in repr(key) and "AKID12…" in key.describe()


def test_identity_cache_single_flight_and_bound() -> None:
    cache = IdentityCache(max_entries=2)
    builds = 0

    def build(name: str) -> Identity:
        nonlocal builds
        builds += 1
        return Identity(IdentityKey(name), credential=None)

    threads = [threading.Thread(target=cache.get_or_create, args=("k", lambda: build("k")))
               for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert builds == 1
    cache.get_or_create("k2", lambda: build("k2"))
    cache.get_or_create("k3", lambda: build("k3"))
    assert len(cache) == 2


def test_identity_cache_holds_at_most_4096_identities_by_default() -> None:
    """docs/security.md, fixed bounds: one identity per pod token must not grow without end."""
    cache = IdentityCache()
    for n in range(4096 + 10):
        cache.get_or_create(("pod-token", n), lambda n=n: Identity(IdentityKey(f"pod-{n}"),
                                                                    credential=None))
    assert len(cache) == 4096


def test_the_role_annotation_is_the_official_providers() -> None:
    """docs/migration.md, Credentials: existing ServiceAccounts keep working unchanged (the
    suite's fake API uses the constant, so only this literal catches a rename)."""
    assert kube.ROLE_ANNOTATION == "ack.alibabacloud.com/role-arn"


# --- configuration errors and the allow-list --------------------------------------------------

@pytest.fixture()
def host() -> CredentialHost:
    """The built-in plugins with an empty identity cache (a new one for every test)."""
    credential_host = CredentialHost(ProviderSettings())
    credential_host.load(autoload_third_party=False)
    return credential_host


def ctx(host: CredentialHost, environ: dict[str, str], *,
        secrets: dict[str, str] | None = None,
        namespace: str = "team-a", pod_identity: bool = False,
        **settings: object) -> CredentialContext:
    attrs = {"csi.storage.k8s.io/pod.name": "p", "csi.storage.k8s.io/pod.namespace": namespace,
             "csi.storage.k8s.io/serviceAccount.name": "sa"}
    if pod_identity:
        attrs["usePodServiceAccountToken"] = "true"
    request = parse_mount_request(json.dumps(attrs), json.dumps(secrets or {}), "420")
    env = {"ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true", **environ}
    return CredentialContext(
        request, ProviderSettings(environ=MappingProxyType(env), **settings),
        Deadline.after(10), host.metrics, host.identities)


def test_builtins_registered_in_the_existing_providers_order(host: CredentialHost) -> None:
    assert host.plugin_names() == ["pod-rrsa", "provider-rrsa", "ak-assume-role",
                                   "node-publish-secret", "static-ak", "ecs-ram-role"]
    assert host.manager.get_plugin("cross-account") is not None


@pytest.mark.parametrize(("environ", "secrets", "match"), [
    ({"ACCESS_KEY_ID": "LTAIabc"}, None, "SECRET_ACCESS_KEY is not set"),
    ({"SECRET_ACCESS_KEY": "s"}, None, "ACCESS_KEY_ID is not set"),
    ({}, {"ACCESS_KEY": "LTAIabc"}, "'access_secret'"),
    ({"ALICLOUD_ROLE_ARN": "acs:ram::1:role/r", "ALICLOUD_ACCOUNT_ID": "1"}, None,
     "ALICLOUD_CLUSTER_ID"),
    ({"ALICLOUD_ROLE_ARN": "not-an-arn", "ALICLOUD_OIDC_PROVIDER_ARN": "acs:ram::1:x/y"}, None,
     "ALICLOUD_ROLE_ARN"),
    ({"ACCESS_KEY_ID": "LTAIabc", "SECRET_ACCESS_KEY": "s", "ALICLOUD_ROLE_ARN":
      "acs:ram::1:role/r", "ALICLOUD_ROLE_SESSION_EXPIRATION": "60"}, None, "at least 900"),
])
def test_half_configured_modes_fail_clearly(
    host: CredentialHost, environ: dict[str, str], secrets: dict[str, str] | None, match: str
) -> None:
    with pytest.raises(FailedPrecondition, match=match):
        host.resolve(ctx(host, environ, secrets=secrets))


def test_namespace_allow_list_applies_to_provider_identities(host: CredentialHost) -> None:
    environ = {"ACCESS_KEY_ID": "LTAIabcdef", "SECRET_ACCESS_KEY": "s3cret"}
    allowed = frozenset({"kube-system"})
    with pytest.raises(PermissionDenied, match="allow-list"):
        host.resolve(ctx(host, environ, provider_identity_namespaces=allowed))
    identity = host.resolve(ctx(host, environ, namespace="kube-system",
                                provider_identity_namespaces=allowed))
    assert identity.key.mode == "static-ak" and identity.provider_level
    nps = host.resolve(ctx(host, {}, secrets={"access_key": "LTAIx", "access_secret": "y"},
                           namespace="kube-system", provider_identity_namespaces=allowed))
    assert nps.key.mode == "node-publish-secret"


def test_same_access_key_id_with_another_secret_is_another_identity(
    host: CredentialHost,
) -> None:
    right = {"access_key": "LTAIsame", "access_secret": "right"}
    first = host.resolve(ctx(host, {}, secrets=right))
    second = host.resolve(ctx(host, {}, secrets={**right, "access_secret": "wrong"}))
    assert first.key != second.key and first.credential is not second.credential
    again = host.resolve(ctx(host, {}, secrets=right))
    assert again is first


def test_a_rotated_static_access_key_secret_is_another_identity(host: CredentialHost) -> None:
    """The environment's AccessKey identity is built once per pair, not once per process: a
    settings snapshot with the rotated secret resolves to another identity."""
    pair = {"ACCESS_KEY_ID": "LTAIsame", "SECRET_ACCESS_KEY": "before"}
    first = host.resolve(ctx(host, pair))
    assert host.resolve(ctx(host, pair)) is first
    rotated = host.resolve(ctx(host, {**pair, "SECRET_ACCESS_KEY": "after"}))
    assert rotated.key.mode == "static-ak" and rotated.key != first.key
    assert rotated.credential is not first.credential


def test_the_access_key_digest_is_computed_once_per_pair_not_per_mount(
    host: CredentialHost, monkeypatch: pytest.MonkeyPatch,
) -> None:
    digested: list[str] = []
    digest = _providers.secret_digest
    monkeypatch.setattr(_providers, "secret_digest",
                        lambda secret: digested.append(secret) or digest(secret))
    pair = {"ACCESS_KEY_ID": "LTAIdigestonce", "SECRET_ACCESS_KEY": "digest-once-secret"}
    first = host.resolve(ctx(host, pair))
    for _ in range(3):
        assert host.resolve(ctx(host, pair)) is first
    assert digested == ["digest-once-secret"]


def test_pod_identity_outside_a_cluster_says_so(host: CredentialHost) -> None:
    import base64

    from ack_secrets_provider.core.mount.spec import ATTR_SA_TOKENS

    claims = base64.urlsafe_b64encode(json.dumps(
        {"sub": "system:serviceaccount:ns:sa", "exp": 4102444800}).encode()).decode().rstrip("=")
    attrs = {"csi.storage.k8s.io/pod.name": "p", "csi.storage.k8s.io/pod.namespace": "ns",
             "csi.storage.k8s.io/serviceAccount.name": "sa", "usePodServiceAccountToken": "true",
             ATTR_SA_TOKENS: json.dumps({"sts.aliyuncs.com": {"token": f"h.{claims}.s"}})}
    request = parse_mount_request(json.dumps(attrs), "{}", "420")
    settings = ProviderSettings(environ=MappingProxyType(
        {"ALICLOUD_OIDC_PROVIDER_ARN": "acs:ram::1:oidc-provider/x"}))
    with pytest.raises(FailedPrecondition, match="KUBERNETES_SERVICE_HOST"):
        host.resolve(CredentialContext(request, settings, Deadline.after(5), host.metrics,
                                       host.identities, kube=None))


# --- ServiceAccount reader --------------------------------------------------------------------

@pytest.fixture()
def kube_api() -> Iterator[FakeKubeApi]:
    api = FakeKubeApi().start()
    try:
        yield api
    finally:
        api.stop()


def test_serviceaccount_reads_are_cached_and_shared(kube_api: FakeKubeApi) -> None:
    kube_api.add("ns", "sa", {kube.ROLE_ANNOTATION: " acs:ram::1:role/r "})
    kube_api.add("ns", "bare", {})
    now = [0.0]
    client = KubeClient(kube_api.url, token_file=None, ca_file=None, read_cache_ttl=30,
                        clock=lambda: now[0])
    deadline = Deadline.after(10)
    results: list[str | None] = []
    threads = [threading.Thread(target=lambda: results.append(
        kube.role_arn(client, "ns", "sa", deadline))) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert results == ["acs:ram::1:role/r"] * 20 and kube_api.calls == 1
    assert kube.role_arn(client, "ns", "bare", deadline) is None
    assert kube.role_arn(client, "ns", "bare", deadline) is None and kube_api.calls == 2
    now[0] = 31.0  # the TTL passed: the annotation is read again (it may have changed)
    kube_api.add("ns", "sa", {kube.ROLE_ANNOTATION: "acs:ram::1:role/new"})
    assert kube.role_arn(client, "ns", "sa", deadline) == "acs:ram::1:role/new"


def test_the_sts_endpoint_is_the_regions_vpc_endpoint_else_the_public_one() -> None:
    """docs/authentication.md: STS calls go to --sts-endpoint, by default
    sts-vpc.<region>.aliyuncs.com, or sts.aliyuncs.com without a region (the provider's region
    first, else the mount's); migration.md restores the official provider's with
    --sts-endpoint=sts.aliyuncs.com. Over HTTPS unless an override says otherwise."""
    def host(settings: ProviderSettings, region: str | None = None) -> str:
        endpoint = _sts.sts_endpoint(settings, region)
        assert endpoint.protocol == "https" and endpoint.address == endpoint.host
        return endpoint.host

    assert host(ProviderSettings()) == "sts.aliyuncs.com"
    assert host(ProviderSettings(), "cn-beijing") == "sts-vpc.cn-beijing.aliyuncs.com"
    assert host(ProviderSettings(region="cn-hangzhou"), "cn-beijing") == (
        "sts-vpc.cn-hangzhou.aliyuncs.com")
    assert host(ProviderSettings(region="cn-hangzhou", sts_endpoint="sts.aliyuncs.com")) == (
        "sts.aliyuncs.com")


def test_serviceaccount_annotations_are_cached_30_seconds_by_default() -> None:
    """docs/authentication.md: 'ServiceAccount annotations are cached for 30 s
    (serviceaccount_cache_ttl)': the provider's Kubernetes client takes that setting."""
    settings = ProviderSettings(kube_api_url="http://127.0.0.1:9")
    client = KubeClient.from_settings(settings)
    assert settings.serviceaccount_cache_ttl == 30.0
    assert client is not None and client._reads.ttl == 30.0
    # the setting, not the client's own default (also 30 s)
    other = KubeClient.from_settings(ProviderSettings(kube_api_url="http://127.0.0.1:9",
                                                      serviceaccount_cache_ttl=5.0))
    assert other is not None and other._reads.ttl == 5.0


def test_serviceaccount_read_errors(kube_api: FakeKubeApi, tmp_path: Path) -> None:
    client = KubeClient(kube_api.url, token_file=None, ca_file=None)
    deadline = Deadline.after(10)
    with pytest.raises(FailedPrecondition, match="does not exist"):
        kube.role_arn(client, "ns", "ghost", deadline)
    kube_api.forbidden = True
    with pytest.raises(PermissionDenied, match="rbac.install"):
        kube.role_arn(client, "ns", "other", deadline)
    unreachable = KubeClient("http://127.0.0.1:9", token_file=None, ca_file=None)
    with pytest.raises(Unavailable):
        kube.role_arn(unreachable, "ns", "sa", deadline)
    no_token = KubeClient(kube_api.url, token_file=str(tmp_path / "missing"), ca_file=None)
    with pytest.raises(FailedPrecondition, match="automountServiceAccountToken"):
        kube.role_arn(no_token, "ns", "sa", deadline)
    # An empty token file is named with its flag, nothing is sent: sent without a token, the
    # request read "HTTP 401 ... ClusterRole lacks this permission", a fix that does not apply.
    empty = tmp_path / "token"
    empty.write_text("\n")
    calls = kube_api.calls
    with pytest.raises(FailedPrecondition) as refused:
        kube.role_arn(KubeClient(kube_api.url, token_file=str(empty), ca_file=None), "ns", "sa",
                      deadline)
    assert (f"the provider's ServiceAccount token {empty} (--kube-token-file) is empty; the "
            "provider needs automountServiceAccountToken") in refused.value.message
    assert kube_api.calls == calls
    # Not UTF-8 (a binary file named by mistake): the same, not a UnicodeDecodeError escaping
    # the plugin as an internal error
    empty.write_bytes(b"\xff\xfe\x00token\n")
    with pytest.raises(FailedPrecondition) as refused:
        kube.role_arn(KubeClient(kube_api.url, token_file=str(empty), ca_file=None), "ns", "sa",
                      deadline)
    assert (f"the provider's ServiceAccount token {empty} (--kube-token-file) is not a token "
            "(not UTF-8 text); the provider needs automountServiceAccountToken") \
        in refused.value.message
    assert kube_api.calls == calls
    # Text no bearer token holds (a second line, a space, non-ASCII: a kubeconfig or a note
    # named by mistake): the same, not "could not be reached" (an outage, retried) because
    # http.client refused the header
    for text in ("header.payload.sig\nsecond-line\n", "two words", "t\u00f6ken", "tok\u20acen"):
        empty.write_text(text, encoding="utf-8")
        with pytest.raises(FailedPrecondition) as refused:
            kube.role_arn(KubeClient(kube_api.url, token_file=str(empty), ca_file=None), "ns",
                          "sa", deadline)
        assert (f"the provider's ServiceAccount token {empty} (--kube-token-file) is not a token "
                "(a bearer token is one word of ASCII characters); the provider needs "
                "automountServiceAccountToken") in refused.value.message
        assert text not in refused.value.message
    # far larger than any token (a log, /dev/zero named by mistake): refused after a bounded
    # read, not read to its end
    empty.write_text("a" * (MAX_TOKEN_CHARS + 1))
    with pytest.raises(FailedPrecondition) as refused:
        kube.role_arn(KubeClient(kube_api.url, token_file=str(empty), ca_file=None), "ns", "sa",
                      deadline)
    assert (f"the provider's ServiceAccount token {empty} (--kube-token-file) is not a token "
            f"(larger than {MAX_TOKEN_CHARS:,} characters)") in refused.value.message
    assert kube_api.calls == calls
    # A CA bundle that cannot be loaded is the provider's configuration, not an outage to
    # retry: the error names the file, the flag and the fix (nothing is sent: the host below
    # is never contacted).
    not_pem = tmp_path / "ca.crt"
    not_pem.write_text("not a certificate\n")
    for ca_file, reason in ((str(tmp_path / "missing.crt"), "No such file or directory"),
                            (str(not_pem), "NO_CERTIFICATE_OR_CRL_FOUND")):
        no_ca = KubeClient("https://127.0.0.1:9", token_file=None, ca_file=ca_file)
        with pytest.raises(FailedPrecondition) as refused:
            kube.role_arn(no_ca, "ns", "sa", deadline)
        assert f"{ca_file} (--kube-ca-file) cannot be loaded ({reason})" in refused.value.message
        assert "automountServiceAccountToken" in refused.value.message


def test_a_kubernetes_api_certificate_the_ca_bundle_does_not_vouch_for(
    emulator_tls: EmulatorHandle, tmp_path: Path
) -> None:
    """A --kube-ca-file that holds another CA (a valid PEM) is the trust configured, not an
    outage: FAILED_PRECONDITION naming the API, the file, the flag and the fix. It read "could
    not be reached; try again later" (UNAVAILABLE, retried forever). The control: the right CA
    reaches the server (the emulator, which has no ServiceAccounts)."""
    url, deadline = emulator_tls.https_url, Deadline.after(10)
    assert url is not None and emulator_tls.root_ca is not None
    with pytest.raises(FailedPrecondition, match="does not exist in the Kubernetes API"):
        kube.role_arn(KubeClient(url, token_file=None, ca_file=str(emulator_tls.root_ca)),
                      "ns", "sa", deadline)
    other_ca = generate_chain(tmp_path / "other").root
    with pytest.raises(FailedPrecondition) as refused:
        kube.role_arn(KubeClient(url, token_file=None, ca_file=str(other_ca)), "ns", "sa",
                      deadline)
    assert (f"reading serviceaccount ns/sa: the Kubernetes API at {url} presented a certificate "
            f"that {other_ca} (--kube-ca-file) does not vouch for (unable to get local issuer "
            "certificate); the provider needs automountServiceAccountToken") \
        in refused.value.message


# --- emulator parts ---------------------------------------------------------------------------

OIDC = "acs:ram::1:oidc-provider/ack-rrsa-c"
ROLE = "acs:ram::1:role/r"


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    emulator = Emulator({
        "sts": {"oidc_providers": [{"arn": OIDC, "issuer": "https://issuer"}],
                "roles": [{"arn": ROLE, "oidc_subjects": ["system:serviceaccount:ns:*"]}]},
        "metadata": {"role": "node", "require_v2": True},
    }, parts=[StsEmulator, MetadataEmulator])
    emulator.start("127.0.0.1:0")
    try:
        yield emulator
    finally:
        emulator.stop()


def test_emulator_parts_are_discovered_through_entry_points() -> None:
    services = {cls.service for cls in discover_parts(("sts", "metadata"))}
    assert services == {"sts", "metadata"}


def _oidc_call(emu: Emulator, token: str) -> tuple[int, dict[str, Any]]:
    from urllib.parse import urlencode

    query = urlencode({"Action": "AssumeRoleWithOIDC", "Version": "2015-04-01",
                       "RoleArn": ROLE, "OIDCProviderArn": OIDC, "OIDCToken": token,
                       "RoleSessionName": "s", "Format": "JSON"})
    request = urllib.request.Request(f"{emu.http_url}/?{query}", method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.mark.parametrize(("spoil", "code"), [
    ({}, None),
    ({"audience": "other"}, "AuthenticationFail.OIDCToken.AudienceMismatch"),
    ({"issuer": "https://evil"}, "AuthenticationFail.OIDCToken.IssuerMismatch"),
    ({"expires_in": -5}, "AuthenticationFail.OIDCToken.Expired"),
    ({"key": "other"}, "AuthenticationFail.OIDCToken.Invalid"),
    ({"subject": "system:serviceaccount:other:sa"}, "AuthenticationFail.NoPermission"),
])
def test_sts_emulator_checks_oidc_tokens(emu: Emulator, spoil: dict[str, object],
                                          code: str | None) -> None:
    sts = emu.parts["sts"]
    assert isinstance(sts, StsEmulator)
    subject = str(spoil.pop("subject", "system:serviceaccount:ns:sa"))
    if spoil.get("key") == "other":
        spoil["key"] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = sts.mint_token(OIDC, subject, **spoil)
    status, body = _oidc_call(emu, token)
    if code is None:
        assert status == 200 and str(body["Credentials"]["AccessKeyId"]).startswith("STS.")
    else:
        assert status in (400, 403) and body["Code"] == code


def test_metadata_emulator_refuses_v1_when_required(emu: Emulator) -> None:
    base = f"{emu.http_url}/latest/meta-data/ram/security-credentials/"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(base, timeout=5)  # noqa: S310
    assert refused.value.code == 403
    put = urllib.request.Request(f"{emu.http_url}/latest/api/token", method="PUT",
                                 headers={"X-aliyun-ecs-metadata-token-ttl-seconds": "60"})
    with urllib.request.urlopen(put, timeout=5) as response:  # noqa: S310
        token = response.read().decode()
    get = urllib.request.Request(base + "node", headers={"X-aliyun-ecs-metadata-token": token})
    with urllib.request.urlopen(get, timeout=5) as response:  # noqa: S310
        body = json.loads(response.read())
    assert body["Code"] == "Success" and body["AccessKeyId"].startswith("STS.")
    bad = urllib.request.Request(base + "node", headers={"X-aliyun-ecs-metadata-token": "x"})
    with pytest.raises(urllib.error.HTTPError) as unauthorized:
        urllib.request.urlopen(bad, timeout=5)  # noqa: S310
    assert unauthorized.value.code == 401


AUTH_PAGE = Path(__file__).resolve().parents[1] / "docs" / "authentication.md"


def test_the_emulator_example_on_the_authentication_page_works() -> None:
    """docs/authentication.md, Testing against the emulator: its seed loads, a token minted as
    the page says gets the page's role from STS with the page's OIDC provider, and the admin
    operations it lists are the parts' own."""
    import re

    import yaml

    from ack_secrets_provider.backends.kms.emulator import KmsEmulator

    text = AUTH_PAGE.read_text(encoding="utf-8")
    seed = re.search(r"Seed example:\n\n```yaml\n(.*?)```", text, re.DOTALL)
    listed = re.search(r"`POST /_admin/sts/\{([a-z_,]+)\}`", text)
    assert seed and listed and "`POST /_admin/metadata/set`" in text
    emulator = Emulator(yaml.safe_load(seed.group(1)),
                        parts=[KmsEmulator, StsEmulator, MetadataEmulator])
    sts, metadata = emulator.parts["sts"], emulator.parts["metadata"]
    assert isinstance(sts, StsEmulator) and isinstance(metadata, MetadataEmulator)
    assert sts.admin_operations() == tuple(listed.group(1).split(","))
    assert metadata.admin_operations() == ("set",)
    emulator.start("127.0.0.1:0")
    try:
        token = sts.mint_token("acs:ram::1234:oidc-provider/ack-rrsa-c1",
                               "system:serviceaccount:team-a:app-a",
                               audience="sts.aliyuncs.com", expires_in=600)
        query = urllib.parse.urlencode({
            "Action": "AssumeRoleWithOIDC", "Version": "2015-04-01", "Format": "JSON",
            "RoleArn": "acs:ram::1234:role/app-a", "RoleSessionName": "s", "OIDCToken": token,
            "OIDCProviderArn": "acs:ram::1234:oidc-provider/ack-rrsa-c1"})
        request = urllib.request.Request(f"{emulator.http_url}/?{query}", method="POST")
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            assert json.loads(response.read())["Credentials"]["AccessKeyId"].startswith("STS.")
    finally:
        emulator.stop()
