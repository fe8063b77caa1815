"""Endpoint helpers: the host form users write, and the explicit override map."""

from __future__ import annotations

import pytest
from installed import SERVICES

from ack_secrets_provider.core.cloud.endpoints import (
    ENV_OVERRIDES,
    Endpoint,
    EndpointOverrides,
    check_endpoint_host,
)
from ack_secrets_provider.core.errors import InvalidArgument

WHERE = "object #1 ('db')"
EXAMPLE = "kms-vpc.cn-hangzhou.aliyuncs.com"


def check(host: str) -> None:
    check_endpoint_host(host, where=WHERE, field_name="kmsEndpoint", example=EXAMPLE)


@pytest.mark.parametrize(
    "host",
    [
        "kms-vpc.cn-hangzhou.aliyuncs.com",
        "kms.cn-hangzhou.aliyuncs.com",
        "kst-hzz65f1f2b7c1kqx8wd2b.cryptoservice.kms.aliyuncs.com",
        "127.0.0.1:8443",
        "proxy.internal:443",
        "localhost",
    ],
)
def test_good_hosts(host: str) -> None:
    check(host)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("kms-vpc.{region}.aliyuncs.com", "placeholder ({region})"),
        ("{kms-instance-id}.cryptoservice.kms.aliyuncs.com", "placeholder ({kms-instance-id})"),
        ("kms.<region>.aliyuncs.com", "placeholder (<region>)"),
    ],
)
def test_placeholders_are_refused(host: str, expected: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        check(host)
    message = str(caught.value)
    assert message.startswith(f"{WHERE}: field kmsEndpoint {host!r}")
    assert expected in message and repr(EXAMPLE) in message


@pytest.mark.parametrize(
    ("host", "fix"),
    [
        ("https://kms.cn-hangzhou.aliyuncs.com", "write 'kms.cn-hangzhou.aliyuncs.com'"),
        ("https://kms.cn-hangzhou.aliyuncs.com/", "write 'kms.cn-hangzhou.aliyuncs.com'"),
        ("http://127.0.0.1:8080", "write '127.0.0.1:8080'"),
    ],
)
def test_scheme_is_refused_with_the_bare_host(host: str, fix: str) -> None:
    with pytest.raises(InvalidArgument, match="without a scheme") as caught:
        check(host)
    assert fix in str(caught.value)


def test_path_is_refused() -> None:
    with pytest.raises(
        InvalidArgument, match="without a path; write 'kms.cn-hangzhou.aliyuncs.com'"
    ):
        check("kms.cn-hangzhou.aliyuncs.com/v1")


@pytest.mark.parametrize(
    "host",
    [
        "kms cn-hangzhou",
        "kms_vpc.cn-hangzhou.aliyuncs.com",
        "-kms.aliyuncs.com",
        "",
        "a..b",
        "kms.cn-hangzhou.aliyuncs.com\n",
        " kms.cn-hangzhou.aliyuncs.com",
        "x" * 64 + ".com",
        "127.0.0.1:99999",
        "127.0.0.1:0",
    ],
)
def test_malformed_hosts_are_refused(host: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        check(host)
    assert str(caught.value).startswith(f"{WHERE}: field kmsEndpoint")


def test_service_and_host_overrides_resolve() -> None:
    overrides = EndpointOverrides.parse(
        [
            "kms=http://127.0.0.1:8080,sts=http://127.0.0.1:9090",
            "KMS.cn-hangzhou.aliyuncs.com=https://127.0.0.1:8443/",
        ], SERVICES
    )
    assert bool(overrides)
    hz = overrides.resolve("kms", "kms.cn-hangzhou.aliyuncs.com")
    assert (hz.address, hz.protocol, hz.overridden) == ("127.0.0.1:8443", "https", True)
    bj = overrides.resolve("kms", "kms.cn-beijing.aliyuncs.com")
    assert bj.url == "http://127.0.0.1:8080" and bj.host == "kms.cn-beijing.aliyuncs.com"
    assert "overridden to http://127.0.0.1:8080" in bj.describe()
    oos = overrides.resolve("oos", "oos-vpc.cn-hangzhou.aliyuncs.com")
    assert oos == Endpoint(
        "oos",
        "oos-vpc.cn-hangzhou.aliyuncs.com",
        "oos-vpc.cn-hangzhou.aliyuncs.com",
        "https",
        False,
    )
    assert oos.describe() == "oos-vpc.cn-hangzhou.aliyuncs.com"
    assert sorted(overrides.describe()) == [
        "kms -> http://127.0.0.1:8080",
        "kms.cn-hangzhou.aliyuncs.com -> https://127.0.0.1:8443",
        "sts -> http://127.0.0.1:9090",
    ]


def test_no_overrides() -> None:
    overrides = EndpointOverrides.parse(["", " , "], SERVICES)
    assert not overrides
    assert overrides.resolve("kms", "kms.x.aliyuncs.com").url == "https://kms.x.aliyuncs.com"


def test_flags_win_over_environment() -> None:
    overrides = EndpointOverrides.from_sources(
        ["kms=http://127.0.0.1:2"], {ENV_OVERRIDES: "kms=http://127.0.0.1:1,oos=http://127.0.0.1:3"},
        SERVICES,
    )
    assert overrides.by_service == {"kms": "http://127.0.0.1:2", "oos": "http://127.0.0.1:3"}


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("kms", "must look like kms=http://127.0.0.1:8080"),
        ("kms=127.0.0.1:8080", "must look like"),
        ("kms=ftp://127.0.0.1", "must look like"),
        ("=http://127.0.0.1:1", "must look like"),
        ("kms=http://", "must look like"),
        ("kms=http://127.0.0.1:99999", "must look like"),
        ("kms=http://[::1", "must look like"),
        ("vault=http://127.0.0.1:1", "neither a service"),
        ("kms=http://127.0.0.1:1/api", "without a path or query; write kms=http://127.0.0.1:1"),
        ("kms=http://127.0.0.1:1?x=1", "without a path or query"),
    ],
)
def test_bad_override_entries(entry: str, expected: str) -> None:
    with pytest.raises(ValueError, match="endpoint override") as caught:
        EndpointOverrides.parse([entry], services=("kms", "oos", "sts", "metadata"))
    assert expected in str(caught.value)


def test_an_unknown_service_is_refused_naming_the_source_the_name_and_the_services() -> None:
    with pytest.raises(ValueError) as caught:
        EndpointOverrides.parse(["kmss=http://127.0.0.1:1"], {"kms", "sts"})
    assert str(caught.value) == (
        "argument --endpoint-override: endpoint override 'kmss=http://127.0.0.1:1': 'kmss' is "
        "neither a service (kms, sts) nor an endpoint host name (a host has dots)")
    with pytest.raises(ValueError) as caught:
        EndpointOverrides.from_sources(["kms=http://127.0.0.1:1"],
                                       {ENV_OVERRIDES: "vault=http://127.0.0.1:2"}, {"kms"})
    assert str(caught.value).startswith(
        f"environment variable {ENV_OVERRIDES}: endpoint override 'vault=http://127.0.0.1:2': "
        "'vault' is neither a service (kms)")
    # a host needs no installed service: any name with dots is one
    host = EndpointOverrides.parse(["vault.example.com=http://127.0.0.1:3"], {"kms"})
    assert host.by_host == {"vault.example.com": "http://127.0.0.1:3"}


def test_override_with_credentials_is_refused_without_echoing_them() -> None:
    with pytest.raises(ValueError) as caught:
        EndpointOverrides.parse(["kms=http://user:s3cr3t@127.0.0.1:8080"], SERVICES)
    assert "s3cr3t" not in str(caught.value) and "user:password@" in str(caught.value)
    with pytest.raises(ValueError) as caught:
        EndpointOverrides.parse(["kms=ftp://user:s3cr3t@127.0.0.1"], SERVICES)
    assert "s3cr3t" not in str(caught.value)
