"""The OOS part of the loopback emulator: `GetSecretParameter` and `GetSecretParameters`.

Seed section `oos`:

    oos:
      parameters:
        - name: app-api-token
          values: ["token-v1", "token-v2"]   # ParameterVersion 1, 2 (oldest first)
          description: API token             # optional
        - name: smtp-password
          value: "s3cret"                     # shorthand: one version

`WithDecryption` accepts `True`/`true`; without it the value is answered as an opaque
ciphertext, as OOS does. `ParameterVersion` pins a version (an integer, increasing with every
new value). `GetSecretParameters` takes `Names` as a JSON list string of at most
`MAX_NAMES_PER_CALL` (10, per the OOS API reference "GetSecretParameters": "最多支持 10 个参数名称")
names; unknown names are listed in `InvalidParameters`.

Errors: unknown name/version → 404 `EntityNotExists.SecretParameter`; not allowed by policy →
403 `Forbidden.RAM`; bad `Names`/`ParameterVersion` → 400 `InvalidParameter`; throttling →
`Throttling.User`.

Admin: `POST /_admin/oos/put-parameter` {name, value} appends a version (creating the parameter
if needed) and answers its ParameterVersion.
"""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

from ack_secrets_provider.core.emulator.api import ApiError, Call, EmulatorPart, Reply
from ack_secrets_provider.core.emulator.errors import access_denied_detail

MAX_NAMES_PER_CALL = 10
_OWNER = "root(1234567890123456)"


@dataclass
class _Version:
    value: str
    updated: str


@dataclass
class _Parameter:
    name: str
    id: str
    created: str
    description: str = ""
    key_id: str = "alias/acs/oos"
    tags: dict[str, str] = field(default_factory=dict)
    versions: list[_Version] = field(default_factory=list)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parameter_name(value: str) -> str:
    """Accept `acs:oos:<region>:<account>:secretparameter/<name>` as well as the bare name."""
    if value.startswith("acs:oos:") and ":secretparameter/" in value:
        return value.split(":secretparameter/", 1)[1]
    return value


class OosEmulator(EmulatorPart):
    service: ClassVar[str] = "oos"
    api_version: ClassVar[str | None] = "2019-06-01"
    actions: ClassVar[frozenset[str]] = frozenset({"GetSecretParameter", "GetSecretParameters"})
    product: ClassVar[str] = "oos"
    throttling_code: ClassVar[str] = "Throttling.User"
    throttling_status: ClassVar[int] = 400
    sample_allow: ClassVar[tuple[str, ...]] = ("app-*",)

    @classmethod
    def sample_seed(cls) -> Mapping[str, Any]:
        return {"parameters": [
            {"name": "app-token", "values": ["token-v1", "token-v2"]},
            {"name": "app-smtp", "value": "smtp-v1"},
            {"name": "other-param", "value": "hidden"},
        ]}

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        self._lock = threading.Lock()
        self._params: dict[str, _Parameter] = {}

    def load_seed(self, section: Mapping[str, Any]) -> None:
        unknown = sorted(set(section) - {"parameters"})
        if unknown:
            raise ValueError(f"emulator seed: oos has unknown field(s) {', '.join(unknown)}; "
                             "expected parameters")
        for index, entry in enumerate(section.get("parameters") or []):
            where = f"emulator seed: oos.parameters[{index}]"
            if not isinstance(entry, Mapping) or not entry.get("name"):
                raise ValueError(f"{where} needs a name")
            if "values" in entry:
                values = entry["values"]
                if not isinstance(values, list) or not values:
                    raise ValueError(f"{where}: field values must be a non-empty list")
            elif "value" in entry:
                values = [entry["value"]]
            else:
                raise ValueError(f"{where}: give value or values")
            param = self._new(str(entry["name"]))
            param.description = str(entry.get("description", ""))
            tags = entry.get("tags") or {}
            if not isinstance(tags, Mapping):
                raise ValueError(f"{where}: field tags must be a mapping")
            param.tags = {str(k): str(v) for k, v in tags.items()}
            param.versions = [_Version(str(v), param.created) for v in values]
            self._params[param.name] = param

    def _new(self, name: str) -> _Parameter:
        return _Parameter(name, "p-" + uuid.uuid4().hex[:20], _iso(self.context.now()))

    # --- API ----------------------------------------------------------------------------------
    def handle(self, call: Call) -> Reply:
        decrypt = call.flag("WithDecryption")
        if call.action == "GetSecretParameter":
            name = _parameter_name(call.require("Name"))
            call.resources.append(name)
            self._authorize(call, "oos:GetSecretParameter", [name])
            version = self._version_param(call)
            with self._lock:
                found = self._render(name, version, decrypt)
            if found is None:
                raise ApiError("EntityNotExists.SecretParameter",
                               f"The secret parameter {name} (version {version or 'latest'}) "
                               "does not exist.", 404)
            return Reply({"RequestId": call.request_id, "Parameter": found})
        names = self._names(call)
        call.resources.extend(names)
        self._authorize(call, "oos:GetSecretParameters", names)
        parameters: list[dict[str, Any]] = []
        invalid: list[str] = []
        with self._lock:
            for name in names:
                found = self._render(name, None, decrypt)
                if found is None:
                    invalid.append(name)
                else:
                    parameters.append(found)
        return Reply({"RequestId": call.request_id, "Parameters": parameters,
                      "InvalidParameters": invalid})

    def _authorize(self, call: Call, action: str, names: list[str]) -> None:
        principal = call.principal.name if call.principal else None
        for name in names:
            if not self.context.policies.allows(principal, "oos", name, action):
                raise ApiError(
                    "Forbidden.RAM", "User not authorized to operate on the specified "
                    "resource, or this API doesn't support RAM.", 403,
                    extra=access_denied_detail(action, principal,
                                               f"acs:oos:*:*:secretparameter/{name}"))

    @staticmethod
    def _version_param(call: Call) -> int | None:
        raw = call.param("ParameterVersion")
        if raw is None or raw == "":
            return None
        try:
            version = int(raw)
        except ValueError:
            version = 0
        if version < 1:
            raise ApiError("InvalidParameter", "The parameter ParameterVersion must be a "
                           f"positive integer, got {raw!r}.", 400)
        return version

    @staticmethod
    def _names(call: Call) -> list[str]:
        raw = call.require("Names")
        try:
            names = json.loads(raw)
        except ValueError:
            names = None
        if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
            raise ApiError("InvalidParameter", "The parameter Names must be a JSON list of "
                           "parameter names, for example [\"a\",\"b\"].", 400)
        if not names:
            raise ApiError("InvalidParameter", "The parameter Names is empty.", 400)
        if len(names) > MAX_NAMES_PER_CALL:
            raise ApiError("InvalidParameter", f"The parameter Names contains {len(names)} "
                           f"names; at most {MAX_NAMES_PER_CALL} are allowed per call.", 400)
        return [_parameter_name(n) for n in dict.fromkeys(names)]

    def _render(self, name: str, version: int | None, decrypt: bool) -> dict[str, Any] | None:
        param = self._params.get(name)
        if param is None:
            return None
        number = version or len(param.versions)
        if number > len(param.versions):
            return None
        entry = param.versions[number - 1]
        value = entry.value if decrypt else _ciphertext(param.id, number)
        return {
            "Id": param.id,
            "Name": param.name,
            "Type": "Secret",
            "Value": value,
            "ParameterVersion": number,
            "Description": param.description,
            "KeyId": param.key_id,
            "Constraints": "",
            "Tags": dict(param.tags),
            "ShareType": "Private",
            "ResourceGroupId": "rg-emulator",
            "CreatedDate": param.created,
            "CreatedBy": _OWNER,
            "UpdatedDate": entry.updated,
            "UpdatedBy": _OWNER,
        }

    # --- admin --------------------------------------------------------------------------------
    def admin_operations(self) -> tuple[str, ...]:
        return ("put-parameter", "rotate")

    def admin(self, operation: str, body: Mapping[str, Any]) -> Mapping[str, Any]:
        if operation == "rotate":
            added = self.admin("put-parameter", body)
            return {"version": str(added["ParameterVersion"])}
        if operation != "put-parameter":
            raise KeyError(operation)
        name, value = body.get("name"), body.get("value")
        if not isinstance(name, str) or not name or not isinstance(value, str):
            raise ValueError("oos/put-parameter: fields name and value (strings) are required")
        with self._lock:
            param = self._params.get(name)
            if param is None:
                param = self._params[name] = self._new(name)
            param.versions.append(_Version(value, _iso(self.context.now())))
            number = len(param.versions)
        return {"Name": name, "ParameterVersion": number}


def _ciphertext(param_id: str, version: int) -> str:
    """An opaque stand-in for the encrypted value: never derived from the plaintext."""
    digest = hashlib.sha256(f"{param_id}:{version}".encode()).hexdigest()
    return f"ENC({digest[:32]})"
