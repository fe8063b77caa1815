"""Request counters, so tests and benchmarks can assert how many upstream calls happened.

Every API call (not admin calls) is counted once, after it is answered: per service, per API
(`kms.GetSecretValue`), per result (`OK` or the error code, `Dropped` for dropped connections),
per API and result, per secret (`kms/<name>`, `oos/<name>`) and per principal.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable
from typing import Any


class Counters:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self._total = 0
        self._service: Counter[str] = Counter()
        self._api: Counter[str] = Counter()
        self._result: Counter[str] = Counter()
        self._api_result: dict[str, Counter[str]] = {}
        self._secret: Counter[str] = Counter()
        self._principal: Counter[str] = Counter()

    def record(self, *, service: str, action: str, result: str, resources: Iterable[str] = (),
               principal: str | None = None) -> None:
        api = f"{service}.{action}" if action else service
        with self._lock:
            self._total += 1
            self._service[service] += 1
            self._api[api] += 1
            self._result[result] += 1
            self._api_result.setdefault(api, Counter())[result] += 1
            for resource in set(resources):
                self._secret[f"{service}/{resource}"] += 1
            if principal:
                self._principal[principal] += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "total": self._total,
                "by_service": dict(self._service),
                "by_api": dict(self._api),
                "by_result": dict(self._result),
                "by_api_result": {k: dict(v) for k, v in self._api_result.items()},
                "by_secret": dict(self._secret),
                "by_principal": dict(self._principal),
            }

    def reset(self) -> None:
        with self._lock:
            self._reset()
