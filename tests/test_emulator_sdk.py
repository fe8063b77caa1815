"""The real Alibaba SDKs against the loopback emulator: values, signatures, credentials, TLS."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlencode

import pytest
from alibabacloud_credentials.client import Client as CredentialClient
from alibabacloud_credentials.provider.static_ak import StaticAKCredentialsProvider
from alibabacloud_credentials.provider.static_sts import StaticSTSCredentialsProvider
from alibabacloud_kms20160120 import models as kms_models
from alibabacloud_kms20160120.client import Client as KmsClient
from alibabacloud_oos20190601 import models as oos_models
from alibabacloud_oos20190601.client import Client as OosClient
from alibabacloud_tea_openapi.exceptions import ClientException
from alibabacloud_tea_openapi.utils import Utils
from alibabacloud_tea_openapi.utils_models import Config
from darabonba.exceptions import UnretryableException

from ack_secrets_provider.core.emulator import testing as t
from ack_secrets_provider.core.emulator.testing import EmulatorHandle


def ak(key_id: str = t.ACCESS_KEY_ID, secret: str = t.ACCESS_KEY_SECRET) -> CredentialClient:
    return CredentialClient(provider=StaticAKCredentialsProvider(
        access_key_id=key_id, access_key_secret=secret))


def config(endpoint: str, credential: CredentialClient, **kw: Any) -> Config:
    return Config(endpoint=endpoint, protocol=kw.pop("protocol", "http"), credential=credential,
                  region_id="cn-hangzhou", connect_timeout=3000, read_timeout=5000, **kw)


def kms(emu: EmulatorHandle, credential: CredentialClient | None = None, **kw: Any) -> KmsClient:
    return KmsClient(config(emu.address, credential or ak(), **kw))


def oos(emu: EmulatorHandle, credential: CredentialClient | None = None, **kw: Any) -> OosClient:
    return OosClient(config(emu.address, credential or ak(), **kw))


def get_secret(client: KmsClient, name: str, **kw: Any) -> kms_models.GetSecretValueResponseBody:
    return client.get_secret_value(kms_models.GetSecretValueRequest(secret_name=name, **kw)).body


def raises_code(code: str, status: int) -> Any:
    class _Check:
        def __enter__(self) -> None:
            self.ctx = pytest.raises(ClientException)
            self.info = self.ctx.__enter__()

        def __exit__(self, *exc: Any) -> bool:
            handled = self.ctx.__exit__(*exc)
            assert self.info.value.code == code, self.info.value.message
            assert self.info.value.status_code == status
            return bool(handled)

    return _Check()


# --- KMS values ------------------------------------------------------------------------------
def test_kms_text_versions_and_stages(emulator: EmulatorHandle) -> None:
    client = kms(emulator)
    current = get_secret(client, "app/db-password")
    assert (current.secret_data, current.version_id, current.secret_data_type) == (
        "new-password", "v2", "text")
    assert current.version_stages.version_stage == ["ACSCurrent"]
    assert current.secret_name == "app/db-password" and current.request_id
    assert get_secret(client, "app/db-password", version_id="v1").secret_data == "old-password"
    previous = get_secret(client, "app/db-password", version_stage="ACSPrevious")
    assert (previous.secret_data, previous.version_id) == ("old-password", "v1")
    arn = "acs:kms:cn-hangzhou:1234567890123456:secret/app/db-password"
    assert get_secret(client, arn).secret_data == "new-password"


def test_kms_binary_secret_is_base64(emulator: EmulatorHandle) -> None:
    body = get_secret(kms(emulator), "app/binary")
    assert body.secret_data_type == "binary"
    assert base64.b64decode(body.secret_data) == b"\x00\x01\x02\x03\x04\x05\xff"


def test_kms_not_found_and_wrong_version(emulator: EmulatorHandle) -> None:
    client = kms(emulator)
    with raises_code("Forbidden.ResourceNotFound", 404):
        get_secret(client, "no/such")
    with raises_code("Forbidden.ResourceNotFound", 404):
        get_secret(client, "app/db-password", version_id="v9")
    with raises_code("Forbidden.ResourceNotFound", 404):
        get_secret(client, "app/db-password", version_id="v1", version_stage="ACSCurrent")


def test_policy_denies_with_real_codes(emulator: EmulatorHandle) -> None:
    limited = ak(t.LIMITED_ACCESS_KEY_ID, t.LIMITED_ACCESS_KEY_SECRET)
    assert get_secret(kms(emulator, limited), "app/config").secret_data.startswith("{")
    with raises_code("Forbidden.NoPermission", 403):
        get_secret(kms(emulator, limited), "other/secret")
    with pytest.raises(ClientException) as info:
        oos(emulator, limited).get_secret_parameter(
            oos_models.GetSecretParameterRequest(name="other-param", with_decryption=True))
    assert (info.value.code, info.value.status_code) == ("Forbidden.RAM", 403)
    assert info.value.access_denied_detail["AuthAction"] == "oos:GetSecretParameter"


# --- signatures --------------------------------------------------------------------------------
def test_wrong_secret_and_unknown_key_are_rejected(emulator: EmulatorHandle) -> None:
    with raises_code("SignatureDoesNotMatch", 400):
        get_secret(kms(emulator, ak(secret="wrong-secret")), "app/config")
    with raises_code("InvalidAccessKeyId.NotFound", 404):
        get_secret(kms(emulator, ak(key_id="LTAI5tUnknownKey")), "app/config")


def test_legacy_v1_signature(emulator: EmulatorHandle) -> None:
    assert get_secret(kms(emulator, signature_algorithm="v2"), "app/config").secret_data
    body = oos(emulator, signature_algorithm="v2").get_secret_parameter(
        oos_models.GetSecretParameterRequest(name="app-token", with_decryption=True)).body
    assert body.parameter.value == "token-v2"
    with raises_code("SignatureDoesNotMatch", 400):
        get_secret(kms(emulator, ak(secret="nope"), signature_algorithm="v2"), "app/config")


def _raw_acs3(emu: EmulatorHandle, *, date: datetime, nonce: str,
              secret: str = t.ACCESS_KEY_SECRET,
              tamper: bool = False) -> tuple[int, dict[str, Any]]:
    """An ACS3 request signed with the SDK's own signer, sent with http.client."""
    query = {"SecretName": "app/config"}
    headers = {
        "host": emu.address, "x-acs-action": "GetSecretValue", "x-acs-version": "2016-01-20",
        "x-acs-date": date.strftime("%Y-%m-%dT%H:%M:%SZ"), "x-acs-signature-nonce": nonce,
        "x-acs-content-sha256": hashlib.sha256(b"").hexdigest(), "accept": "application/json",
    }
    request = SimpleNamespace(pathname="/", method="POST", query=query, headers=headers)
    headers["Authorization"] = Utils.get_authorization(
        request, "ACS3-HMAC-SHA256", headers["x-acs-content-sha256"], t.ACCESS_KEY_ID, secret)
    if tamper:
        query = {"SecretName": "app/db-password"}
    conn = http.client.HTTPConnection(emu.address, timeout=5)
    try:
        conn.request("POST", "/?" + urlencode(query), body=b"", headers=headers)
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def test_raw_request_timestamp_nonce_and_tampering(emulator: EmulatorHandle) -> None:
    now = datetime.now(UTC)
    status, body = _raw_acs3(emulator, date=now, nonce="n-1")
    assert (status, body["SecretData"]) == (200, '{"user": "app", "password": "p@ss"}')
    status, body = _raw_acs3(emulator, date=now, nonce="n-1")
    assert (status, body["Code"]) == (400, "SignatureNonceUsed")
    status, body = _raw_acs3(emulator, date=now - timedelta(minutes=16), nonce="n-2")
    assert (status, body["Code"]) == (400, "InvalidTimeStamp.Expired")
    assert set(body) >= {"RequestId", "HostId", "Code", "Message", "Recommend"}
    status, body = _raw_acs3(emulator, date=now, nonce="n-3", tamper=True)
    assert (status, body["Code"]) == (400, "SignatureDoesNotMatch")


# --- temporary credentials -------------------------------------------------------------------
def test_temporary_credentials_until_expiry(emulator: EmulatorHandle) -> None:
    role = "acs:ram::1234567890123456:role/app-reader"
    cred = emulator.issue_temporary_credentials(role, 900)
    assert cred["AccessKeyId"].startswith("STS.") and cred["Expiration"].endswith("Z")

    def sts(token: str) -> CredentialClient:
        return CredentialClient(provider=StaticSTSCredentialsProvider(
            access_key_id=cred["AccessKeyId"], access_key_secret=cred["AccessKeySecret"],
            security_token=token))

    assert get_secret(kms(emulator, sts(cred["SecurityToken"])), "app/config").secret_data
    assert get_secret(kms(emulator, sts(cred["SecurityToken"]), signature_algorithm="v2"),
                      "app/config").secret_data
    assert emulator.counters()["by_principal"][role] == 2
    with raises_code("InvalidSecurityToken.MismatchWithAccessKey", 400):
        get_secret(kms(emulator, sts("CAISforged")), "app/config")
    with raises_code("MissingSecurityToken", 400):
        get_secret(kms(emulator, ak(cred["AccessKeyId"], cred["AccessKeySecret"])), "app/config")
    emulator.expire_credentials(cred["AccessKeyId"])
    with raises_code("InvalidSecurityToken.Expired", 400):
        get_secret(kms(emulator, sts(cred["SecurityToken"])), "app/config")


def test_role_policy_applies_to_temporary_credentials(emulator: EmulatorHandle) -> None:
    role = "acs:ram::1234567890123456:role/narrow"
    emulator.set_policy(role, {"kms": ["app/db-*"]})
    cred = emulator.issue_temporary_credentials(role)
    client = kms(emulator, CredentialClient(provider=StaticSTSCredentialsProvider(
        access_key_id=cred["AccessKeyId"], access_key_secret=cred["AccessKeySecret"],
        security_token=cred["SecurityToken"])))
    assert get_secret(client, "app/db-password").secret_data == "new-password"
    with raises_code("Forbidden.NoPermission", 403):
        get_secret(client, "app/config")


# --- TLS -----------------------------------------------------------------------------------
def test_tls_listener_trusted_through_root_only(emulator_tls: EmulatorHandle) -> None:
    assert emulator_tls.tls_address and emulator_tls.root_ca and emulator_tls.intermediate_ca
    # Untrusted first: the SDK pools one session per endpoint, and urllib3 adds a configured CA
    # to that session's shared SSL context, so a later call would inherit the trust.
    untrusted = KmsClient(config(emulator_tls.tls_address, ak(), protocol="https"))
    with pytest.raises(UnretryableException) as info:
        get_secret(untrusted, "app/db-password")
    assert "CERTIFICATE_VERIFY_FAILED" in str(info.value)
    client = KmsClient(config(emulator_tls.tls_address, ak(), protocol="https",
                              ca=str(emulator_tls.root_ca)))
    assert get_secret(client, "app/db-password").secret_data == "new-password"


# --- OOS -----------------------------------------------------------------------------------
def test_oos_single_parameter(emulator: EmulatorHandle) -> None:
    client = oos(emulator)
    latest = client.get_secret_parameter(oos_models.GetSecretParameterRequest(
        name="app-token", with_decryption=True)).body.parameter
    assert (latest.value, latest.parameter_version, latest.type) == ("token-v2", 2, "Secret")
    pinned = client.get_secret_parameter(oos_models.GetSecretParameterRequest(
        name="app-token", with_decryption=True, parameter_version=1)).body.parameter
    assert (pinned.value, pinned.parameter_version) == ("token-v1", 1)
    encrypted = client.get_secret_parameter(oos_models.GetSecretParameterRequest(
        name="app-token")).body.parameter
    assert encrypted.value != "token-v2" and "token" not in encrypted.value
    with pytest.raises(ClientException) as info:
        client.get_secret_parameter(oos_models.GetSecretParameterRequest(
            name="app-token", with_decryption=True, parameter_version=3))
    assert (info.value.code, info.value.status_code) == ("EntityNotExists.SecretParameter", 404)
    assert int(emulator.rotate("oos", "app-token", "token-v3")) == 3
    rotated = client.get_secret_parameter(oos_models.GetSecretParameterRequest(
        name="app-token", with_decryption=True)).body.parameter
    assert (rotated.value, rotated.parameter_version) == ("token-v3", 3)


def test_oos_batch_and_its_limit(emulator: EmulatorHandle) -> None:
    client = oos(emulator)
    body = client.get_secret_parameters(oos_models.GetSecretParametersRequest(
        names=json.dumps(["app-token", "app-smtp", "missing"]), with_decryption=True)).body
    assert {p.name: (p.value, p.parameter_version) for p in body.parameters} == {
        "app-token": ("token-v2", 2), "app-smtp": ("smtp-v1", 1)}
    assert body.invalid_parameters == ["missing"]
    ten = ["app-token"] + [f"missing-{i}" for i in range(9)]
    assert len(client.get_secret_parameters(oos_models.GetSecretParametersRequest(
        names=json.dumps(ten), with_decryption=True)).body.invalid_parameters) == 9
    with pytest.raises(ClientException) as info:
        client.get_secret_parameters(oos_models.GetSecretParametersRequest(
            names=json.dumps(ten + ["one-more"]), with_decryption=True))
    assert (info.value.code, info.value.status_code) == ("InvalidParameter", 400)
    assert "at most 10" in info.value.message
