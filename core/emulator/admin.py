"""The admin HTTP API under `/_admin/` (loopback clients only), JSON in and out.

Routes:
  GET    /_admin/health                      services, their admin operations, listener URLs
  GET    /_admin/counters                    request counters (see counters.py)
  POST   /_admin/counters/reset              zero the counters (DELETE /_admin/counters too)
  GET    /_admin/faults                      current fault configs by scope ("*" = all)
  PUT    /_admin/faults                      set one scope's faults (POST works too); body is a
                                             FaultConfig plus optional "service" and "seed"
  DELETE /_admin/faults                      clear all faults
  POST   /_admin/credentials/temporary       {"principal", "duration_seconds"?, "session_name"?}
                                             → {AccessKeyId, AccessKeySecret, SecurityToken,
                                                Expiration, Principal}
  POST   /_admin/credentials/expire          {"access_key_id"} → the credential expires now
  PUT    /_admin/policies                    {"principal", "allow": {service: [glob...]}}
  POST   /_admin/<service>/<operation>       a part's operation, e.g. kms/put-secret-version,
                                             oos/put-parameter
Errors answer 400 (bad body), 404 (unknown route) with {"error": "..."}.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from ack_secrets_provider.core.emulator.api import EmulatorPart
from ack_secrets_provider.core.emulator.counters import Counters
from ack_secrets_provider.core.emulator.credentials import CredentialStore, PolicyStore
from ack_secrets_provider.core.emulator.faults import FaultInjector


class AdminApi:
    """The admin routes over the emulator's state, which the emulator (server.py) hands in.

    `urls()` gives the listener URLs ({"http_url", "https_url"}), known only once started.
    """

    def __init__(
        self, *, parts: Mapping[str, EmulatorPart], counters: Counters, faults: FaultInjector,
        credentials: CredentialStore, policies: PolicyStore,
        urls: Callable[[], Mapping[str, str | None]],
    ) -> None:
        self._parts = parts
        self._counters = counters
        self._faults = faults
        self._credentials = credentials
        self._policies = policies
        self._urls = urls

    def handle(self, method: str, path: str, body: bytes) -> tuple[int, Any]:
        try:
            data = json.loads(body) if body.strip() else {}
        except ValueError:
            return 400, {"error": "admin request body must be JSON"}
        if not isinstance(data, dict):
            return 400, {"error": "admin request body must be a JSON object"}
        parts = [p for p in path.split("/") if p][1:]  # drop "_admin"
        try:
            return self._route(method, parts, data)
        except ValueError as exc:
            return 400, {"error": str(exc)}
        except KeyError:
            return 404, {"error": f"unknown admin route {method} {path}"}

    def _route(self, method: str, parts: list[str], data: Mapping[str, Any]) -> tuple[int, Any]:
        route = "/".join(parts)
        counters, faults = self._counters, self._faults
        if route == "health" and method == "GET":
            return 200, {
                "status": "ok",
                "services": {name: list(p.admin_operations()) for name, p in self._parts.items()},
                **self._urls(),
            }
        if route == "counters":
            if method == "GET":
                return 200, counters.snapshot()
            if method == "DELETE":
                counters.reset()
                return 200, {"reset": True}
        if route == "counters/reset" and method == "POST":
            counters.reset()
            return 200, {"reset": True}
        if route == "faults":
            if method == "GET":
                return 200, faults.snapshot()
            if method in ("PUT", "POST"):
                faults.set(data)
                return 200, faults.snapshot()
            if method == "DELETE":
                faults.clear()
                return 200, {}
        if route == "credentials/temporary" and method == "POST":
            principal = data.get("principal")
            if not isinstance(principal, str) or not principal:
                raise ValueError("credentials/temporary: field principal (a role ARN) is "
                                 "required")
            cred = self._credentials.issue_temporary(
                principal, float(data.get("duration_seconds", 3600)),
                session_name=data.get("session_name"))
            return 200, cred.to_json()
        if route == "credentials/expire" and method == "POST":
            if not self._credentials.expire(str(data.get("access_key_id", ""))):
                raise ValueError("credentials/expire: field access_key_id must name a known "
                                 "temporary credential")
            return 200, {"expired": data["access_key_id"]}
        if route == "policies" and method in ("PUT", "POST"):
            self._policies.load_seed([data])
            return 200, {"principal": data["principal"]}
        if len(parts) == 2 and method == "POST" and parts[0] in self._parts:
            part = self._parts[parts[0]]
            if parts[1] not in part.admin_operations():
                raise KeyError(parts[1])
            return 200, dict(part.admin(parts[1], data))
        raise KeyError(route)
