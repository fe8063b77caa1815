"""The oosparam plugin: validation (pure), then the real OOS SDK against the plugin's own emulator
part, then a whole mount through a real provider socket, as the driver would ask for it."""

from __future__ import annotations

from collections.abc import Iterator
from types import MappingProxyType

import pytest
from ack_oosparam.backend import OosParameterBackend
from ack_oosparam.emulator import OosParameterEmulator
from alibabacloud_credentials.client import Client as CredentialClient
from alibabacloud_credentials.provider.static_ak import StaticAKCredentialsProvider

from ack_secrets_provider.core.cloud.endpoints import EndpointOverrides
from ack_secrets_provider.core.emulator import Emulator
from ack_secrets_provider.core.emulator.testing import EmulatorHandle, running_emulator
from ack_secrets_provider.core.errors import InvalidArgument, NotFound, PermissionDenied
from ack_secrets_provider.core.mount.spec import ObjectSpec
from ack_secrets_provider.core.plugins.backend import FetchContext
from ack_secrets_provider.core.plugins.credentials import Identity, IdentityKey
from ack_secrets_provider.core.resilience.deadline import Deadline
from ack_secrets_provider.core.server.driver_client import (
    driver_attributes,
    files_of,
    running_provider,
    versions_of,
)
from ack_secrets_provider.core.settings import ProviderSettings

AK, SECRET = "LTAI5tOosParamTest01", "oosparam-test-secret"
LIMITED_AK, LIMITED_SECRET = "LTAI5tOosParamLimit1", "oosparam-limited-secret"
#: the endpoint-override services this test may name: the plugin's own
SERVICES = {OosParameterBackend.service}

SEED = {
    "access_keys": [
        {"id": AK, "secret": SECRET, "principal": "app"},
        {"id": LIMITED_AK, "secret": LIMITED_SECRET, "principal": "limited"},
    ],
    "policies": [{"principal": "limited", "allow": {"oosparam": ["public/*"]}}],
    "oosparam": {"parameters": [
        {"name": "app/feature-flags", "values": ["beta=off", "beta=on"]},
        {"name": "app/regions", "value": "cn-hangzhou,cn-beijing", "type": "StringList"},
    ]},
}


def spec(name: str = "app/feature-flags", *, own: dict[str, str] | None = None,
         **fields: object) -> ObjectSpec:
    """An oosparam object; `own` holds the fields the plugin declares (oosEndpoint, listFormat)."""
    return ObjectSpec(index=0, object_name=name, object_type="oosparam", file_name="f",
                      fields=own or {}, **fields)  # type: ignore[arg-type]


def identity(ak: str = AK, secret: str = SECRET) -> Identity:
    provider = StaticAKCredentialsProvider(access_key_id=ak, access_key_secret=secret)
    return Identity(IdentityKey(mode="static-ak", access_key_id=ak),
                    CredentialClient(provider=provider))


def test_validate_refuses_what_oos_parameters_cannot_do() -> None:
    backend = OosParameterBackend(ProviderSettings())
    for fields, message in (
        ({"object_version_label": "ACSCurrent"}, "objectVersionLabel is a KMS version stage"),
        ({"object_version": "0"}, "from 1 to 100"),
        ({"object_version": "101"}, "from 1 to 100"),
        ({"object_version": "latest"}, "ParameterVersion"),
        ({"own": {"oosEndpoint": "https://oos.cn-hangzhou.aliyuncs.com"}}, "without a scheme"),
        ({"own": {"listFormat": "yaml"}}, "listFormat 'yaml' must be one of comma, lines, json"),
    ):
        with pytest.raises(InvalidArgument, match=message):
            backend.validate(spec(**fields))
    with pytest.raises(InvalidArgument, match="objectType: oos"):
        backend.validate(spec("acs:oos:cn-hangzhou:123456789012:secretparameter/db"))
    with pytest.raises(InvalidArgument, match="longer than 200"):
        backend.validate(spec("x" * 201))
    backend.validate(spec("acs:oos:cn-hangzhou:123456789012:parameter/app/flags",
                          object_version="3", own={"oosEndpoint": "oos.cn-hangzhou.aliyuncs.com",
                                                   "listFormat": "json"}))


def test_endpoints_follow_region_arn_and_overrides() -> None:
    backend = OosParameterBackend(ProviderSettings())
    assert backend.endpoint(spec(), "cn-beijing").host == "oos-vpc.cn-beijing.aliyuncs.com"
    arn = spec("acs:oos:cn-shenzhen:123456789012:parameter/app/flags")
    assert backend.endpoint(arn, "cn-beijing").host == "oos-vpc.cn-shenzhen.aliyuncs.com"
    with pytest.raises(InvalidArgument, match="no region"):
        backend.endpoint(spec(), None)
    overridden = OosParameterBackend(ProviderSettings(
        endpoint_overrides=EndpointOverrides.parse(["oos=http://127.0.0.1:9"], SERVICES)))
    endpoint = overridden.endpoint(spec(), "cn-hangzhou")
    assert (endpoint.address, endpoint.protocol, endpoint.overridden) == \
        ("127.0.0.1:9", "http", True)


@pytest.fixture(scope="module")
def emu() -> Iterator[EmulatorHandle]:
    with running_emulator(SEED, parts=[OosParameterEmulator]) as handle:
        yield handle


def fetch(emu: EmulatorHandle, object_spec: ObjectSpec, who: Identity | None = None) -> tuple[
        bytes, str]:
    settings = ProviderSettings(endpoint_overrides=EndpointOverrides.parse(
        [f"oos={emu.http_url}"], SERVICES))
    backend = OosParameterBackend(settings)
    try:
        ctx = FetchContext(who or identity(), Deadline.after(10), backend.endpoint(
            object_spec, "cn-hangzhou"), settings)
        value = backend.fetch(object_spec, ctx)
        return value.data, value.version
    finally:
        backend.close()


def test_fetch_latest_pinned_and_string_list(emu: EmulatorHandle) -> None:
    assert fetch(emu, spec()) == (b"beta=on", "2")
    assert fetch(emu, spec(object_version="1")) == (b"beta=off", "1")
    assert fetch(emu, spec("app/regions")) == (b"cn-hangzhou,cn-beijing", "1")
    assert fetch(emu, spec("acs:oos:cn-hangzhou:123456789012:parameter/app/regions"))[0] == \
        b"cn-hangzhou,cn-beijing"


def test_list_format_is_the_plugins_own_field(emu: EmulatorHandle) -> None:
    regions = "app/regions"
    assert fetch(emu, spec(regions, own={"listFormat": "lines"}))[0] == \
        b"cn-hangzhou\ncn-beijing\n"
    assert fetch(emu, spec(regions, own={"listFormat": "json"}))[0] == \
        b'["cn-hangzhou", "cn-beijing"]'
    assert fetch(emu, spec(regions, own={"listFormat": "comma"}))[0] == b"cn-hangzhou,cn-beijing"
    # a String parameter is written as it is, whatever the format
    assert fetch(emu, spec(own={"listFormat": "lines"}))[0] == b"beta=on"


def test_errors_name_the_object_and_the_fix(emu: EmulatorHandle) -> None:
    with pytest.raises(NotFound) as missing:
        fetch(emu, spec("app/nope"))
    assert "oosparam 'app/nope'" in missing.value.message
    assert "EntityNotExists.Parameter" in missing.value.message
    with pytest.raises(NotFound):
        fetch(emu, spec(object_version="7"))
    with pytest.raises(PermissionDenied) as denied:
        fetch(emu, spec(), identity(LIMITED_AK, LIMITED_SECRET))
    assert "oos:GetParameter" in denied.value.message
    assert LIMITED_SECRET not in denied.value.message


def test_rotation_is_a_new_version(emu: EmulatorHandle) -> None:
    version = emu.admin("POST", "oosparam/put-parameter",
                        {"name": "app/rotating", "value": "one"})["ParameterVersion"]
    assert fetch(emu, spec("app/rotating")) == (b"one", str(version))
    emu.admin("POST", "oosparam/put-parameter", {"name": "app/rotating", "value": "two"})
    assert fetch(emu, spec("app/rotating")) == (b"two", str(version + 1))


def test_seed_mistakes_are_named() -> None:
    for section, message in (
        ({"params": []}, "unknown field"),
        ({"parameters": [{"value": "x"}]}, "needs a name"),
        ({"parameters": [{"name": "a"}]}, "give value"),
        ({"parameters": [{"name": "a", "value": "x", "type": "SecureString"}]}, "type"),
    ):
        with pytest.raises(ValueError, match=message):
            Emulator({"oosparam": section}, parts=[OosParameterEmulator])


def test_mount_through_the_provider_socket(emu: EmulatorHandle) -> None:
    """The whole path: entry-point discovery, static AccessKey identity, SDK, files."""
    settings = ProviderSettings(
        region="cn-hangzhou",
        endpoint_overrides=EndpointOverrides.parse([f"oos={emu.http_url}"], SERVICES),
        environ=MappingProxyType({"ACCESS_KEY_ID": AK, "SECRET_ACCESS_KEY": SECRET}),
    )
    objects = ('- objectName: "app/feature-flags"\n  objectType: oosparam\n'
               '- objectName: "app/regions"\n  objectType: oosparam\n  objectAlias: regions\n')
    with running_provider(settings) as provider:
        response = provider.mount(driver_attributes({"objects": objects}))
    assert files_of(response) == {"app_feature-flags": b"beta=on",
                                  "regions": b"cn-hangzhou,cn-beijing"}
    assert versions_of(response) == {"app_feature-flags": "2", "regions": "1"}
