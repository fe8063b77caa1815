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
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ack_secrets_provider.core.emulator.server import Emulator


class AdminApi:
    def __init__(self, emulator: Emulator) -> None:
        self._emulator = emulator

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
        em = self._emulator
        route = "/".join(parts)
        if route == "health" and method == "GET":
            return 200, {
                "status": "ok",
                "services": {name: list(p.admin_operations()) for name, p in em.parts.items()},
                "http_url": em.http_url,
                "https_url": em.https_url,
            }
        if route == "counters":
            if method == "GET":
                return 200, em.counters.snapshot()
            if method == "DELETE":
                em.counters.reset()
                return 200, {"reset": True}
        if route == "counters/reset" and method == "POST":
            em.counters.reset()
            return 200, {"reset": True}
        if route == "faults":
            if method == "GET":
                return 200, em.faults.snapshot()
            if method in ("PUT", "POST"):
                em.faults.set(data)
                return 200, em.faults.snapshot()
            if method == "DELETE":
                em.faults.clear()
                return 200, {}
        if route == "credentials/temporary" and method == "POST":
            principal = data.get("principal")
            if not isinstance(principal, str) or not principal:
                raise ValueError("credentials/temporary: field principal (a role ARN) is "
                                 "required")
            cred = em.credentials.issue_temporary(
                principal, float(data.get("duration_seconds", 3600)),
                session_name=data.get("session_name"))
            return 200, cred.to_json()
        if route == "credentials/expire" and method == "POST":
            if not em.credentials.expire(str(data.get("access_key_id", ""))):
                raise ValueError("credentials/expire: field access_key_id must name a known "
                                 "temporary credential")
            return 200, {"expired": data["access_key_id"]}
        if route == "policies" and method in ("PUT", "POST"):
            em.policies.load_seed([data])
            return 200, {"principal": data["principal"]}
        if len(parts) == 2 and method == "POST" and parts[0] in em.parts:
            part = em.parts[parts[0]]
            if parts[1] not in part.admin_operations():
                raise KeyError(parts[1])
            return 200, dict(part.admin(parts[1], data))
        raise KeyError(route)
