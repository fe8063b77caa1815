"""A pod cannot send the provider's signed requests to a host of its choosing.

`kmsEndpoint` / `oosEndpoint` may come from a pod's volumeAttributes (they override the
SecretProviderClass). Hosts outside `--allowed-endpoint-suffixes` (default `aliyuncs.com`) are
refused before any credential is resolved, unless an endpoint override covers them.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import replace
from types import MappingProxyType

import pytest
from installed import SERVICES

from ack_secrets_provider.core.cli import build_parser, build_settings
from ack_secrets_provider.core.cloud.endpoints import (
    EndpointOverrides,
    host_allowed,
    parse_allowed_suffixes,
)
from ack_secrets_provider.core.emulator.testing import (
    ACCESS_KEY_ID,
    ACCESS_KEY_SECRET,
    EmulatorHandle,
)
from ack_secrets_provider.core.errors import InvalidArgument
from ack_secrets_provider.core.mount.service import MountOutcome, MountService
from ack_secrets_provider.core.observability.metrics import ProviderMetrics
from ack_secrets_provider.core.resilience.deadline import Deadline
from ack_secrets_provider.core.server.app import load_plugins
from ack_secrets_provider.core.server.driver_client import driver_attributes
from ack_secrets_provider.core.settings import ProviderSettings

REGIONAL = "kms-vpc.cn-hangzhou.aliyuncs.com"
OOS_REGIONAL = "oos-vpc.cn-hangzhou.aliyuncs.com"


class Listener:
    """A loopback TCP listener standing for a host the pod controls; counts connections."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


@pytest.fixture
def attacker() -> Iterator[Listener]:
    listener = Listener()
    yield listener
    listener.close()


def service_for(emulator: EmulatorHandle, **changes: object) -> MountService:
    """Only the real regional hosts are overridden to the emulator (as an air-gapped proxy
    setup would be): a pod-chosen host is dialled for real unless the provider refuses it."""
    settings = ProviderSettings(
        region="cn-hangzhou",
        endpoint_overrides=EndpointOverrides.parse(
            [f"{REGIONAL}={emulator.http_url}", f"{OOS_REGIONAL}={emulator.http_url}"], SERVICES),
        environ=MappingProxyType({"ACCESS_KEY_ID": ACCESS_KEY_ID,
                                  "SECRET_ACCESS_KEY": ACCESS_KEY_SECRET}),
    )
    settings = replace(settings, **changes)  # type: ignore[arg-type]
    backends, credentials = load_plugins(settings, autoload_third_party=False)
    return MountService(settings, backends, credentials)


def mount(
    service: MountService, objects: str, volume_attributes: dict[str, str] | None = None
) -> MountOutcome:
    attributes = driver_attributes({"objects": objects}, volume_attributes=volume_attributes)
    return service.mount(attributes, "{}", '"420"', Deadline.after(10))


@pytest.mark.parametrize("field,kind", [("kmsEndpoint", "kms"), ("oosEndpoint", "oos")])
def test_a_pod_chosen_host_is_refused_and_never_dialled(
    emulator: EmulatorHandle, attacker: Listener, field: str, kind: str
) -> None:
    service = service_for(emulator)
    emulator.reset_counters()
    name = "app/db-password" if kind == "kms" else "app-token"
    host = f"127.0.0.1:{attacker.port}"
    # the SecretProviderClass is fine; the pod overrides `objects` in its volumeAttributes
    evil = f"- objectName: {name}\n  objectType: {kind}\n  {field}: {host}\n"
    try:
        with pytest.raises(InvalidArgument) as info:
            mount(service, f"- objectName: {name}\n  objectType: {kind}\n",
                  volume_attributes={"objects": evil})
    finally:
        service.close()
        service.backends.close()
    message = info.value.message
    assert f"object #1 ({kind} {name!r}): field {field} {host!r}" in message
    assert "--allowed-endpoint-suffixes" in message and "aliyuncs.com" in message
    assert attacker.connections == 0
    # refused before the credential chain ran: not even an STS or metadata call
    assert not any(emulator.counters()["by_api"].values())


def test_alibaba_hosts_still_work_and_an_override_allows_its_host(emulator: EmulatorHandle) -> None:
    service = service_for(emulator)
    try:
        outcome = mount(service, f"- objectName: app/db-password\n  kmsEndpoint: {REGIONAL}\n")
        assert [f.contents for f in outcome.files] == [b"new-password"]
    finally:
        service.close()
        service.backends.close()
    # an operator-mapped private host is allowed although it is not under aliyuncs.com
    proxy = "kms.proxy.internal"
    overrides = EndpointOverrides.parse([f"{proxy}={emulator.http_url}"], SERVICES)
    service = service_for(emulator, endpoint_overrides=overrides)
    try:
        outcome = mount(service, f"- objectName: app/db-password\n  kmsEndpoint: {proxy}\n")
        assert [f.contents for f in outcome.files] == [b"new-password"]
    finally:
        service.close()
        service.backends.close()


def test_the_operator_can_allow_another_domain(emulator: EmulatorHandle) -> None:
    objects = "- objectName: app/db-password\n  kmsEndpoint: kms.corp.example\n"
    service = service_for(emulator)
    try:
        with pytest.raises(InvalidArgument, match="kmsEndpoint 'kms.corp.example'"):
            mount(service, objects)
    finally:
        service.close()
        service.backends.close()
    # allowed by the operator: the check passes, the endpoint is planned (the fetch itself is
    # not made: kms.corp.example is not a loopback address)
    settings = ProviderSettings(region="cn-hangzhou",
                                allowed_endpoint_suffixes=("aliyuncs.com", "corp.example"))
    backends, _credentials = load_plugins(settings, autoload_third_party=False)
    try:
        spec = service.parse(driver_attributes({"objects": objects}), "{}", '"420"').objects[0]
        assert backends.get("kms").endpoint(spec, "cn-hangzhou").host == "kms.corp.example"
    finally:
        backends.close()


@pytest.mark.parametrize("host,allowed", [
    ("kms.cn-hangzhou.aliyuncs.com", True),
    ("kst-hzz62ee2a4f7ab1.cryptoservice.kms.aliyuncs.com", True),
    ("kms.cn-hangzhou.aliyuncs.com:443", True),
    ("aliyuncs.com", True),
    ("evilaliyuncs.com", False),
    ("kms.aliyuncs.com.evil.example", False),
    ("127.0.0.1", False),
    ("169.254.169.254:80", False),
    ("100.100.100.200", False),
])
def test_host_allowed_matches_whole_labels_only(host: str, allowed: bool) -> None:
    assert host_allowed(host, ("aliyuncs.com",)) is allowed
    assert host_allowed(host, ("*",)) is True


def test_the_serve_flag_parses_and_refuses_bad_entries() -> None:
    args = build_parser("serve").parse_args(["serve"])
    assert build_settings(args, {}).allowed_endpoint_suffixes == ("aliyuncs.com",)
    args = build_parser("serve").parse_args(
        ["serve", "--allowed-endpoint-suffixes", " aliyuncs.com, .Corp.Example ,10.0.0.5"])
    assert build_settings(args, {}).allowed_endpoint_suffixes == (
        "aliyuncs.com", "corp.example", "10.0.0.5")
    for bad in ("", "https://corp.example", "corp.example:443", "*.corp.example", "a b"):
        with pytest.raises(ValueError, match="allowed endpoint suffix|no domain given"):
            parse_allowed_suffixes(bad)
    assert json.dumps(parse_allowed_suffixes("*")) == '["*"]'


def _own_endpoint_backend(host: str) -> object:
    from ack_secrets_provider.core.cloud.endpoints import Endpoint
    from ack_secrets_provider.core.mount.spec import ObjectSpec
    from ack_secrets_provider.core.plugins.backend import Backend, FetchContext, SecretValue

    class OwnEndpoint(Backend):
        object_type = "own"
        service = "own"
        fetched: list[str] = []

        def endpoint(self, spec: ObjectSpec, region: str | None) -> Endpoint:
            return self.settings.endpoint_overrides.resolve(self.service, host)

        def fetch(self, spec: ObjectSpec, ctx: FetchContext) -> SecretValue:
            self.fetched.append(spec.object_name)
            return SecretValue(b"x", "v1")

    return OwnEndpoint


class _CountingCredentials:
    """Stands in for the CredentialHost: counts resolutions, refuses to make one."""

    def __init__(self) -> None:
        self.resolved = 0
        self.metrics = ProviderMetrics(process_collectors=False)

    def context(self, request: object, deadline: object) -> object:
        return (request, deadline)

    def resolve(self, context: object) -> object:
        self.resolved += 1
        raise AssertionError("credentials must not be resolved for a refused endpoint")


@pytest.mark.parametrize(("host", "overrides", "refused"), [
    ("attacker.example.com", [], True),
    ("secrets.internal", [], True),
    ("own.cn-hangzhou.aliyuncs.com", [], False),
    ("attacker.example.com", ["attacker.example.com=http://127.0.0.1:9"], False),
])
def test_core_refuses_any_backends_disallowed_host_before_credentials(
    host: str, overrides: list[str], refused: bool
) -> None:
    """The core's guarantee holds even for a backend that skips Backend.regional_endpoint."""
    from ack_secrets_provider.core.plugins.host import BackendHost

    settings = ProviderSettings(endpoint_overrides=EndpointOverrides.parse(overrides, SERVICES))
    backend_class = _own_endpoint_backend(host)
    backends = BackendHost(settings, backends={"own": backend_class(settings)})
    credentials = _CountingCredentials()
    service = MountService(settings, backends, credentials)
    request = service.parse(
        driver_attributes({"objects": "- {objectName: a, objectType: own}\n"}), "null", '"420"')
    try:
        if refused:
            with pytest.raises(InvalidArgument, match="is not an allowed endpoint"):
                service._plan(request, Deadline.after(5))
            assert credentials.resolved == 0
        else:
            with pytest.raises(AssertionError, match="must not be resolved"):
                service._plan(request, Deadline.after(5))  # got as far as the credentials
            assert credentials.resolved == 1
    finally:
        service.close()
