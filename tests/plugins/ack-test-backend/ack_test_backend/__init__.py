"""A backend whose values are derived from the object name, for server tests.

Names select behaviour: `missing-*` → NotFound, `denied-*` → PermissionDenied, `slow-*` →
sleeps 0.5 s, `crash-*` → an unexpected exception, `json-*` → a JSON document, `big-*` → 5 MiB,
`badversion-*` → a version that is no text (a lone surrogate: a plugin breaking its contract),
anything else → the bytes `value-of-<name>`. The version is `v` + objectVersion or `v1`.
It counts calls per name so tests can check concurrency and all-or-nothing behaviour.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from typing import ClassVar

from ack_secrets_provider.core.cloud.endpoints import Endpoint
from ack_secrets_provider.core.errors import NotFound, PermissionDenied
from ack_secrets_provider.core.mount.spec import ObjectSpec
from ack_secrets_provider.core.plugins.backend import Backend, FetchContext, SecretValue

CALLS: Counter[str] = Counter()
IN_FLIGHT = {"now": 0, "max": 0}
_LOCK = threading.Lock()


class MemoryBackend(Backend):
    object_type: ClassVar[str] = "testmem"
    service: ClassVar[str] = "testmem"
    needs_credentials: ClassVar[bool] = False

    def endpoint(self, spec: ObjectSpec, region: str | None) -> Endpoint:
        return Endpoint(service=self.service, host="memory.local", address="memory.local")

    def fetch(self, spec: ObjectSpec, ctx: FetchContext) -> SecretValue:
        name = spec.object_name
        with _LOCK:
            CALLS[name] += 1
            IN_FLIGHT["now"] += 1
            IN_FLIGHT["max"] = max(IN_FLIGHT["max"], IN_FLIGHT["now"])
        try:
            if name.startswith("slow-"):
                time.sleep(0.5)
            if name.startswith("missing-"):
                raise NotFound(f"{spec.describe()}: no such test value")
            if name.startswith("denied-"):
                raise PermissionDenied(f"{spec.describe()}: the test backend denies it")
            if name.startswith("crash-"):
                raise RuntimeError("secret-material-must-not-leak")
            if name.startswith("json-"):
                data = json.dumps({"username": "admin", "password": "s3cr3t",
                                   "nested": {"port": 5432}}).encode()
            elif name.startswith("big-"):
                data = b"x" * (5 * 1024 * 1024)
            else:
                data = f"value-of-{name}".encode()
            if name.startswith("badversion-"):
                return SecretValue(data, "v\ud800")
            return SecretValue(data, f"v{spec.object_version or 1}")
        finally:
            with _LOCK:
                IN_FLIGHT["now"] -= 1


def reset() -> None:
    with _LOCK:
        CALLS.clear()
        IN_FLIGHT.update(now=0, max=0)
