"""The plugin's own emulator part: OOS `GetParameter` (common parameters) on the framework.

Registered under `ack_secrets_provider.emulators` as `oosparam`, so `ack-secrets-provider
emulator` and `core.emulator.testing.running_emulator()` serve it next to the built-in parts;
the framework verifies the SDK's signature, applies faults and counts calls. Seed section:

    oosparam:
      parameters:
        - name: app/feature-flags
          values: ["beta=off", "beta=on"]      # ParameterVersion 1, 2 (oldest first)
        - name: app/regions
          value: "cn-hangzhou,cn-beijing"      # one version
          type: StringList                     # String (default) or StringList

Policies use the service key `oosparam` (`allow: {oosparam: ["app/*"]}`). Errors are the real
ones: unknown name or version → 404 `EntityNotExists.Parameter`; denied → 403 `Forbidden.RAM`;
a ParameterVersion outside 1-100 → 400 `InvalidParameter`. Admin:
`POST /_admin/oosparam/put-parameter` {name, value} appends a version and answers it (`rotate`
does the same for `EmulatorHandle.rotate`).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

from ack_secrets_provider.core.emulator.api import ApiError, Call, EmulatorPart, Reply
from ack_secrets_provider.core.emulator.errors import access_denied_detail

TYPES = ("String", "StringList")
_OWNER = "root(1234567890123456)"


@dataclass
class _Parameter:
    name: str
    type: str
    id: str
    created: str
    description: str = ""
    versions: list[tuple[str, str]] = field(default_factory=list)  # (value, updated)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class OosParameterEmulator(EmulatorPart):
    service: ClassVar[str] = "oosparam"
    api_version: ClassVar[str | None] = "2019-06-01"
    actions: ClassVar[frozenset[str]] = frozenset({"GetParameter"})
    product: ClassVar[str] = "oos"
    throttling_code: ClassVar[str] = "Throttling.User"

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        self._lock = threading.Lock()
        self._params: dict[str, _Parameter] = {}

    def load_seed(self, section: Mapping[str, Any]) -> None:
        unknown = sorted(set(section) - {"parameters"})
        if unknown:
            raise ValueError(f"emulator seed: oosparam has unknown field(s) {', '.join(unknown)};"
                             " expected parameters")
        for index, entry in enumerate(section.get("parameters") or []):
            where = f"emulator seed: oosparam.parameters[{index}]"
            if not isinstance(entry, Mapping) or not entry.get("name"):
                raise ValueError(f"{where} needs a name")
            values = entry.get("values", [entry["value"]] if "value" in entry else None)
            if not isinstance(values, list) or not values:
                raise ValueError(f"{where}: give value, or values as a non-empty list")
            kind = str(entry.get("type", "String"))
            if kind not in TYPES:
                raise ValueError(f"{where}: field type must be one of {', '.join(TYPES)}")
            param = self._new(str(entry["name"]), kind)
            param.description = str(entry.get("description", ""))
            param.versions = [(str(v), param.created) for v in values]
            self._params[param.name] = param

    def _new(self, name: str, kind: str = "String") -> _Parameter:
        return _Parameter(name, kind, "p-" + uuid.uuid4().hex[:20], _iso(self.context.now()))

    def handle(self, call: Call) -> Reply:
        name = call.require("Name")
        call.resources.append(name)
        principal = call.principal.name if call.principal else None
        if not self.context.policies.allows(principal, self.service, name):
            raise ApiError("Forbidden.RAM", "User not authorized to operate on the specified "
                           "resource, or this API doesn't support RAM.", 403,
                           extra=access_denied_detail("oos:GetParameter", principal,
                                                      f"acs:oos:*:*:parameter/{name}"))
        version = self._version(call.param("ParameterVersion"))
        with self._lock:
            param = self._params.get(name)
            number = version or (len(param.versions) if param else 0)
            if param is None or number > len(param.versions):
                raise ApiError("EntityNotExists.Parameter", f"The parameter {name} (version "
                               f"{version or 'latest'}) does not exist.", 404)
            value, updated = param.versions[number - 1]
            body = {
                "Id": param.id, "Name": param.name, "Type": param.type, "Value": value,
                "ParameterVersion": number, "Description": param.description,
                "Constraints": "", "Tags": {}, "ShareType": "Private",
                "ResourceGroupId": "rg-emulator", "CreatedDate": param.created,
                "CreatedBy": _OWNER, "UpdatedDate": updated, "UpdatedBy": _OWNER,
            }
        return Reply({"RequestId": call.request_id, "Parameter": body})

    @staticmethod
    def _version(raw: str | None) -> int | None:
        if raw is None or raw == "":
            return None
        if not raw.isdigit() or not 1 <= int(raw) <= 100:
            raise ApiError("InvalidParameter", "The parameter ParameterVersion must be an "
                           f"integer from 1 to 100, got {raw!r}.", 400)
        return int(raw)

    def admin_operations(self) -> tuple[str, ...]:
        return ("put-parameter", "rotate")

    def admin(self, operation: str, body: Mapping[str, Any]) -> Mapping[str, Any]:
        if operation == "rotate":  # the framework's generic rotation (EmulatorHandle.rotate)
            return {"version": str(self.admin("put-parameter", body)["ParameterVersion"])}
        if operation != "put-parameter":
            raise KeyError(operation)
        name, value = body.get("name"), body.get("value")
        if not isinstance(name, str) or not name or not isinstance(value, str):
            raise ValueError("oosparam/put-parameter: fields name and value (strings) are "
                             "required")
        with self._lock:
            param = self._params.get(name)
            if param is None:
                param = self._params[name] = self._new(name)
            param.versions.append((value, _iso(self.context.now())))
            return {"Name": name, "ParameterVersion": len(param.versions)}
