"""Emulator admin API, faults, counters, seed validation, part discovery and the CLI."""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
from collections.abc import Mapping
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any, ClassVar

import pytest
from alibabacloud_credentials.client import Client as CredentialClient
from alibabacloud_credentials.provider.static_ak import StaticAKCredentialsProvider
from alibabacloud_kms20160120 import models as kms_models
from alibabacloud_kms20160120.client import Client as KmsClient
from alibabacloud_oos20190601 import models as oos_models
from alibabacloud_oos20190601.client import Client as OosClient
from alibabacloud_tea_openapi.exceptions import ServerException, ThrottlingException
from alibabacloud_tea_openapi.utils_models import Config
from darabonba.exceptions import UnretryableException

from ack_secrets_provider.backends.kms.emulator import put_secret_version
from ack_secrets_provider.core.emulator import (
    ApiError,
    Call,
    Emulator,
    EmulatorPart,
    Reply,
    cli,
    registry,
)
from ack_secrets_provider.core.emulator import testing as t
from ack_secrets_provider.core.emulator.testing import (
    AdminError,
    EmulatorHandle,
    running_emulator,
)

REPO = Path(__file__).resolve().parents[1]


def _config(address: str, **kw: Any) -> Config:
    credential = CredentialClient(provider=StaticAKCredentialsProvider(
        access_key_id=kw.pop("key_id", t.ACCESS_KEY_ID),
        access_key_secret=kw.pop("secret", t.ACCESS_KEY_SECRET)))
    return Config(endpoint=address, protocol=kw.pop("protocol", "http"), credential=credential,
                  region_id="cn-hangzhou", connect_timeout=3000,
                  read_timeout=kw.pop("read_timeout", 5000), **kw)


def _value(emu: EmulatorHandle, name: str = "app/db-password", **kw: Any) -> str:
    client = KmsClient(_config(emu.address, **kw))
    return str(client.get_secret_value(
        kms_models.GetSecretValueRequest(secret_name=name)).body.secret_data)


def _oos_value(emu: EmulatorHandle) -> str:
    client = OosClient(_config(emu.address))
    return str(client.get_secret_parameter(oos_models.GetSecretParameterRequest(
        name="app-smtp", with_decryption=True)).body.parameter.value)


def test_rotation_moves_stages(emulator: EmulatorHandle) -> None:
    assert put_secret_version(emulator, "app/db-password", "rotated") == "v3"
    client = KmsClient(_config(emulator.address))
    current = client.get_secret_value(kms_models.GetSecretValueRequest(
        secret_name="app/db-password")).body
    assert (current.secret_data, current.version_id) == ("rotated", "v3")
    previous = client.get_secret_value(kms_models.GetSecretValueRequest(
        secret_name="app/db-password", version_stage="ACSPrevious")).body
    assert (previous.secret_data, previous.version_id) == ("new-password", "v2")
    oldest = client.get_secret_value(kms_models.GetSecretValueRequest(
        secret_name="app/db-password", version_id="v1")).body
    assert oldest.version_stages.version_stage == []
    assert put_secret_version(emulator, "new/binary", b"\x01\x02", version_id="b1") == "b1"
    fresh = client.get_secret_value(kms_models.GetSecretValueRequest(
        secret_name="new/binary")).body
    assert (fresh.secret_data_type, fresh.secret_data) == ("binary", "AQI=")
    with pytest.raises(AdminError, match="already exists"):
        put_secret_version(emulator, "new/binary", "x", version_id="b1")


def test_throttling_raises_sdk_throttling_exception(emulator: EmulatorHandle) -> None:
    emulator.set_faults(service="kms", throttle_next=1, retry_after_ms=1500)
    with pytest.raises(ThrottlingException) as info:
        _value(emulator)
    assert info.value.code == "Rejected.Throttling"
    assert info.value.retry_after == 1500
    assert _value(emulator) == "new-password"  # only the next call was throttled
    assert emulator.counters()["by_api_result"]["kms.GetSecretValue"] == {
        "Rejected.Throttling": 1, "OK": 1}


def test_outage_is_scoped_and_errors_are_5xx(emulator: EmulatorHandle) -> None:
    emulator.set_faults(service="kms", outage_seconds=30)
    with pytest.raises(ServerException) as info:
        _value(emulator)
    assert (info.value.code, info.value.status_code) == ("ServiceUnavailableTemporary", 503)
    assert _oos_value(emulator) == "smtp-v1"  # OOS is not in the outage
    emulator.clear_faults()
    assert _value(emulator) == "new-password"
    emulator.set_faults(error_next=1, error_status=500)
    with pytest.raises(ServerException) as info:
        _oos_value(emulator)
    assert (info.value.code, info.value.status_code) == ("InternalFailure", 500)


def test_latency_and_dropped_connections(emulator: EmulatorHandle) -> None:
    emulator.set_faults(latency_ms=1500)
    with pytest.raises(UnretryableException):
        _value(emulator, read_timeout=200)
    emulator.set_faults(drop_next=1)
    with pytest.raises(UnretryableException):
        _value(emulator)
    assert _value(emulator) == "new-password"
    assert emulator.counters()["by_result"]["Dropped"] == 1


def test_seeded_fault_ratios_are_reproducible(emulator: EmulatorHandle) -> None:
    def pattern() -> list[bool]:
        emulator.set_faults(throttle_ratio=0.5, retry_after_ms=10, seed=42)
        outcome = []
        for _ in range(16):
            try:
                _value(emulator)
                outcome.append(True)
            except ThrottlingException:
                outcome.append(False)
        return outcome

    first = pattern()
    assert pattern() == first
    assert True in first and False in first


def test_counters_by_api_secret_principal_and_reset(emulator: EmulatorHandle) -> None:
    _value(emulator)
    _value(emulator, "app/config")
    _value(emulator, "app/config", key_id=t.LIMITED_ACCESS_KEY_ID,
           secret=t.LIMITED_ACCESS_KEY_SECRET)
    with pytest.raises(Exception):  # noqa: B017 - the code is asserted through the counters
        _value(emulator, "missing/secret")
    _oos_value(emulator)
    counters = emulator.counters()
    assert counters["total"] == 5
    assert counters["by_service"] == {"kms": 4, "oos": 1}
    assert counters["by_api"] == {"kms.GetSecretValue": 4, "oos.GetSecretParameter": 1}
    assert counters["by_result"] == {"OK": 4, "Forbidden.ResourceNotFound": 1}
    assert counters["by_secret"] == {"kms/app/db-password": 1, "kms/app/config": 2,
                                     "kms/missing/secret": 1, "oos/app-smtp": 1}
    assert counters["by_principal"] == {t.PRINCIPAL: 4, t.LIMITED_PRINCIPAL: 1}
    emulator.reset_counters()
    assert emulator.counters()["total"] == 0


def test_admin_api_errors_and_health(emulator: EmulatorHandle) -> None:
    health = emulator.health()
    assert health["services"]["kms"] == ["put-secret-version", "rotate"]
    assert health["services"]["oos"] == ["put-parameter", "rotate"]
    with pytest.raises(AdminError, match="404"):
        emulator.admin("POST", "kms/no-such-operation", {})
    with pytest.raises(AdminError, match="throttle_ratio"):
        emulator.set_faults(throttle_ratio=2)
    with pytest.raises(AdminError, match="unknown field"):
        emulator.set_faults(latency=5)
    with pytest.raises(AdminError, match="principal"):
        emulator.admin("POST", "credentials/temporary", {})


@pytest.mark.parametrize(("seed", "message"), [
    ({"kms": {"secrets": [{"name": "x"}]}}, r"kms.secrets\[0\].versions\[0\]: give data"),
    ({"kms": {"secrets": [{"name": "x", "data": "a", "data_type": "blob"}]}}, "data_type"),
    ({"access_keys": [{"id": "a"}]}, r"access_keys\[0\]: field\(s\) secret, principal"),
    ({"oos": {"parameters": [{"name": "p"}]}}, r"oos.parameters\[0\]: give value"),
    ({"kmss": {}}, "unknown top-level key"),
])
def test_seed_errors_name_the_field(seed: Mapping[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Emulator(seed)


def test_example_seed_loads() -> None:
    emulator = Emulator(REPO / "examples" / "emulator-data.yaml")
    assert {"kms", "oos"} <= set(emulator.parts)
    assert emulator.credentials.lookup("LTAI5tEmulatorDemoKey01") is not None


def test_missing_entry_point_is_skipped_with_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    ghost = EntryPoint(name="ghost", value="no_such_module_xyz:Part", group=registry.GROUP)
    kms = EntryPoint(name="kms", value="ack_secrets_provider.backends.kms.emulator:KmsEmulator",
                     group=registry.GROUP)
    monkeypatch.setattr(registry, "entry_points", lambda group: [ghost, kms])
    monkeypatch.setattr(registry, "_warned", set())
    with pytest.warns(RuntimeWarning, match="ghost"):
        parts = registry.discover_parts()
    assert [p.service for p in parts] == ["kms"]


class _EchoPart(EmulatorPart):
    """A custom part: an anonymous action and a plain-HTTP path, as STS/metadata need."""

    service: ClassVar[str] = "echo"
    api_version: ClassVar[str | None] = "2020-01-01"
    actions: ClassVar[frozenset[str]] = frozenset({"Whoami"})
    anonymous_actions: ClassVar[frozenset[str]] = frozenset({"Hello"})
    http_paths: ClassVar[tuple[str, ...]] = ("/latest/",)

    def load_seed(self, section: Mapping[str, Any]) -> None:
        self.greeting = section.get("greeting", "hi")

    def handle(self, call: Call) -> Reply:
        if call.action == "Hello":
            return Reply({"Greeting": self.greeting, "Signed": call.principal is not None})
        assert call.principal is not None
        return Reply({"Principal": call.principal.name})

    def handle_http(self, call: Call) -> Reply:
        if call.path == "/latest/missing":
            raise ApiError("NotFound", "no", 404)
        return Reply(f"path={call.path}")


def test_custom_part_anonymous_and_http_routes() -> None:
    import urllib.request

    seed = {**t.default_seed(), "echo": {"greeting": "hello"}}
    with running_emulator(seed, parts=[_EchoPart]) as emu:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        url = f"{emu.http_url}/?Action=Hello&Version=2020-01-01"
        with opener.open(urllib.request.Request(url, method="POST"), timeout=5) as response:
            assert json.loads(response.read()) == {
                "Greeting": "hello", "Signed": False, "RequestId": response.headers[
                    "x-acs-request-id"]}
        with opener.open(f"{emu.http_url}/latest/meta-data/x", timeout=5) as response:
            assert response.read() == b"path=/latest/meta-data/x"
        unsigned = urllib.request.Request(f"{emu.http_url}/?Action=Whoami&Version=2020-01-01",
                                          method="POST")
        with pytest.raises(urllib.error.HTTPError) as info:
            opener.open(unsigned, timeout=5)
        assert json.loads(info.value.read())["Code"] == "IncompleteSignature"
        assert emu.counters()["by_service"] == {"echo": 3}


def test_cli_refuses_non_loopback(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    assert cli.run(parser.parse_args(["--listen", "0.0.0.0:0"])) == 2
    assert "loopback" in capsys.readouterr().err


def test_cli_process_serves_tls_and_stops_on_sigterm(tmp_path: Path) -> None:
    args = [sys.executable, "-m", "ack_secrets_provider.core.emulator", "--listen", "127.0.0.1:0",
            "--data", str(REPO / "examples" / "emulator-data.yaml"),
            "--tls-listen", "127.0.0.1:0", "--tls-dir", str(tmp_path / "ca")]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        assert info["address"].startswith("127.0.0.1:") and info["https_url"]
        assert Path(info["root_ca"]).is_file() and Path(info["intermediate_ca"]).is_file()
        client = KmsClient(_config(info["tls_address"], protocol="https", ca=info["root_ca"],
                                   key_id="LTAI5tEmulatorDemoKey01",
                                   secret="emulator-demo-secret-01"))
        body = client.get_secret_value(kms_models.GetSecretValueRequest(
            secret_name="app/db-password")).body
        assert (body.secret_data, body.version_id) == ("db-password-v2", "v2")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        if proc.stdout:
            proc.stdout.close()


def test_running_emulator_process_handle() -> None:
    from ack_secrets_provider.core.emulator.testing import running_emulator_process

    with running_emulator_process(REPO / "examples" / "emulator-data.yaml") as emu:
        assert int(emu.rotate("oos", "app-api-token", "api-token-v3")) == 3
        client = OosClient(_config(emu.address, key_id="LTAI5tEmulatorDemoKey01",
                                   secret="emulator-demo-secret-01"))
        parameter = client.get_secret_parameter(oos_models.GetSecretParameterRequest(
            name="app-api-token", with_decryption=True)).body.parameter
        assert (parameter.value, parameter.parameter_version) == ("api-token-v3", 3)
