"""The KMS part of the loopback emulator: `GetSecretValue` in the real wire format.

Seed section `kms`:

    kms:
      secrets:
        - name: app/db-password          # SecretName (an ARN's name part also matches)
          secret_type: Generic           # optional, default Generic
          data_type: text                # default for versions: text | binary
          versions:                      # oldest first
            - {version_id: v1, data: "old", stages: [ACSPrevious]}
            - {version_id: v2, data: "new", stages: [ACSCurrent]}
        - name: tls-key
          data_type: binary
          data_base64: "AAEC..."         # shorthand: one version v1, ACSCurrent

Versions without `stages` get none, except the last one, which gets ACSCurrent when no version
claims it (and the one before it ACSPrevious). Binary data is given as `data_base64` (or `data`,
taken as UTF-8) and answered base64-encoded with `SecretDataType: binary`, as KMS does.

Errors: unknown secret/version/stage → 404 `Forbidden.ResourceNotFound`; a principal whose policy
does not allow the name → 403 `Forbidden.NoPermission`; throttling → `Rejected.Throttling`.

Admin: `POST /_admin/kms/put-secret-version` {name, data | data_base64, data_type?, version_id?}
adds a version that becomes ACSCurrent; the previous current one becomes ACSPrevious (rotation);
`put_secret_version(handle, ...)` calls it from tests. `rotate` {name, value} does the same for a
text value (the framework's generic rotation).

Sample data (`testing.default_seed()`): app/db-password (v1 ACSPrevious "old-password", v2
ACSCurrent "new-password"), app/config (JSON text), app/binary (bytes 00 01 02 03 04 05 ff),
other/secret; the limited principal may read app/*.
"""

from __future__ import annotations

import base64
import binascii
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

from ack_secrets_provider.core.emulator.api import ApiError, Call, EmulatorPart, Reply
from ack_secrets_provider.core.emulator.errors import access_denied_detail
from ack_secrets_provider.core.emulator.testing import EmulatorHandle

CURRENT = "ACSCurrent"
PREVIOUS = "ACSPrevious"


@dataclass
class _Version:
    version_id: str
    data: bytes
    data_type: str
    stages: list[str]
    create_time: str


@dataclass
class _Secret:
    name: str
    secret_type: str = "Generic"
    versions: list[_Version] = field(default_factory=list)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _secret_name(value: str) -> str:
    """Accept `acs:kms:<region>:<account>:secret/<name>` like the real API."""
    if value.startswith("acs:kms:") and ":secret/" in value:
        return value.split(":secret/", 1)[1]
    return value


def _data(entry: Mapping[str, Any], where: str) -> bytes:
    if "data_base64" in entry:
        try:
            return base64.b64decode(str(entry["data_base64"]), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"{where}: field data_base64 is not valid base64") from None
    if "data" in entry:
        return str(entry["data"]).encode("utf-8")
    raise ValueError(f"{where}: give data (text) or data_base64 (binary)")


class KmsEmulator(EmulatorPart):
    service: ClassVar[str] = "kms"
    api_version: ClassVar[str | None] = "2016-01-20"
    actions: ClassVar[frozenset[str]] = frozenset({"GetSecretValue"})
    product: ClassVar[str] = "Kms"
    throttling_code: ClassVar[str] = "Rejected.Throttling"
    throttling_status: ClassVar[int] = 400
    sample_allow: ClassVar[tuple[str, ...]] = ("app/*",)

    @classmethod
    def sample_seed(cls) -> Mapping[str, Any]:
        return {"secrets": [
            {"name": "app/db-password", "versions": [
                {"version_id": "v1", "data": "old-password", "stages": [PREVIOUS]},
                {"version_id": "v2", "data": "new-password", "stages": [CURRENT]},
            ]},
            {"name": "app/config", "data": '{"user": "app", "password": "p@ss"}'},
            {"name": "app/binary", "data_type": "binary", "data_base64": "AAECAwQF/w=="},
            {"name": "other/secret", "data": "not-for-limited"},
        ]}

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        self._lock = threading.Lock()
        self._secrets: dict[str, _Secret] = {}

    # --- seed ---------------------------------------------------------------------------------
    def load_seed(self, section: Mapping[str, Any]) -> None:
        unknown = sorted(set(section) - {"secrets"})
        if unknown:
            raise ValueError(f"emulator seed: kms has unknown field(s) {', '.join(unknown)}; "
                             "expected secrets")
        for index, entry in enumerate(section.get("secrets") or []):
            where = f"emulator seed: kms.secrets[{index}]"
            if not isinstance(entry, Mapping) or not entry.get("name"):
                raise ValueError(f"{where} needs a name")
            secret = _Secret(str(entry["name"]), str(entry.get("secret_type", "Generic")))
            default_type = str(entry.get("data_type", "text"))
            versions = entry.get("versions")
            if versions is None:
                versions = [{**{k: v for k, v in entry.items() if k.startswith("data")},
                             "version_id": entry.get("version_id", "v1")}]
            if not isinstance(versions, list) or not versions:
                raise ValueError(f"{where}: field versions must be a non-empty list")
            for vindex, ventry in enumerate(versions):
                vwhere = f"{where}.versions[{vindex}]"
                if not isinstance(ventry, Mapping):
                    raise ValueError(f"{vwhere} must be a mapping")
                data_type = str(ventry.get("data_type", default_type))
                if data_type not in ("text", "binary"):
                    raise ValueError(f"{vwhere}: field data_type must be text or binary")
                stages = ventry.get("stages") or []
                if not isinstance(stages, list):
                    raise ValueError(f"{vwhere}: field stages must be a list")
                secret.versions.append(_Version(
                    str(ventry.get("version_id") or f"v{vindex + 1}"),
                    _data(ventry, vwhere), data_type, [str(s) for s in stages],
                    _iso(self.context.now())))
            if len({v.version_id for v in secret.versions}) != len(secret.versions):
                raise ValueError(f"{where}: version_id values must be unique")
            if not any(CURRENT in v.stages for v in secret.versions):
                secret.versions[-1].stages.append(CURRENT)
                if len(secret.versions) > 1 and not any(PREVIOUS in v.stages
                                                        for v in secret.versions):
                    secret.versions[-2].stages.append(PREVIOUS)
            if sum(CURRENT in v.stages for v in secret.versions) != 1:
                raise ValueError(f"{where}: exactly one version may carry ACSCurrent")
            self._secrets[secret.name] = secret

    # --- API ----------------------------------------------------------------------------------
    def handle(self, call: Call) -> Reply:
        name = _secret_name(call.require("SecretName"))
        call.resources.append(name)
        principal = call.principal.name if call.principal else None
        if not self.context.policies.allows(principal, "kms", name):
            raise ApiError("Forbidden.NoPermission",
                           "This operation is forbidden by permission system.", 403,
                           extra=access_denied_detail("kms:GetSecretValue", principal,
                                                      f"acs:kms:*:*:secret/{name}"))
        version_id = call.param("VersionId") or None
        stage = call.param("VersionStage") or None
        with self._lock:
            secret = self._secrets.get(name)
            version = None if secret is None else self._pick(secret, version_id, stage)
            if secret is None or version is None:
                raise ApiError("Forbidden.ResourceNotFound", "Resource not found.", 404)
            stages = list(version.stages)
        data = (base64.b64encode(version.data).decode() if version.data_type == "binary"
                else version.data.decode("utf-8"))
        return Reply({
            "RequestId": call.request_id,
            "SecretName": secret.name,
            "SecretType": secret.secret_type,
            "VersionId": version.version_id,
            "CreateTime": version.create_time,
            "SecretData": data,
            "SecretDataType": version.data_type,
            "VersionStages": {"VersionStage": stages},
        })

    @staticmethod
    def _pick(secret: _Secret, version_id: str | None, stage: str | None) -> _Version | None:
        if version_id is None and stage is None:
            stage = CURRENT
        for version in secret.versions:
            if version_id is not None and version.version_id != version_id:
                continue
            if stage is not None and stage not in version.stages:
                continue
            return version
        return None

    # --- admin --------------------------------------------------------------------------------
    def admin_operations(self) -> tuple[str, ...]:
        return ("put-secret-version", "rotate")

    def admin(self, operation: str, body: Mapping[str, Any]) -> Mapping[str, Any]:
        if operation == "rotate":
            value = body.get("value")
            if not isinstance(value, str):
                raise ValueError("kms/rotate: fields name and value (strings) are required")
            added = self.admin("put-secret-version", {"name": body.get("name"), "data": value})
            return {"version": added["VersionId"]}
        if operation != "put-secret-version":
            raise KeyError(operation)
        name = body.get("name")
        if not isinstance(name, str) or not name:
            raise ValueError("kms/put-secret-version: field name is required")
        data_type = str(body.get("data_type", "text"))
        if data_type not in ("text", "binary"):
            raise ValueError("kms/put-secret-version: field data_type must be text or binary")
        data = _data(body, "kms/put-secret-version")
        with self._lock:
            secret = self._secrets.setdefault(name, _Secret(name))
            taken = {v.version_id for v in secret.versions}
            version_id = str(body.get("version_id") or "")
            if not version_id:
                n = len(secret.versions) + 1
                while f"v{n}" in taken:
                    n += 1
                version_id = f"v{n}"
            if version_id in taken:
                raise ValueError(f"kms/put-secret-version: version_id {version_id!r} already "
                                 f"exists for secret {name!r}")
            for version in secret.versions:
                if PREVIOUS in version.stages:
                    version.stages.remove(PREVIOUS)
                if CURRENT in version.stages:
                    version.stages.remove(CURRENT)
                    version.stages.append(PREVIOUS)
            secret.versions.append(_Version(version_id, data, data_type, [CURRENT],
                                            _iso(self.context.now())))
        return {"SecretName": name, "VersionId": version_id}


def put_secret_version(handle: EmulatorHandle, name: str, data: str | bytes, *,
                       version_id: str | None = None, data_type: str | None = None) -> str:
    """Rotate a KMS secret in a running emulator: the new version becomes ACSCurrent. Returns its
    VersionId. `bytes` are stored as a binary secret."""
    body: dict[str, Any] = {"name": name}
    if isinstance(data, bytes):
        body["data_base64"] = base64.b64encode(data).decode()
        body["data_type"] = data_type or "binary"
    else:
        body["data"] = data
        body["data_type"] = data_type or "text"
    if version_id:
        body["version_id"] = version_id
    return str(handle.admin("POST", "kms/put-secret-version", body)["VersionId"])
