"""Fault injection: latency, throttling, 5xx, outages and dropped connections.

Faults are set through the admin API (`PUT /_admin/faults`) or `EmulatorHandle.set_faults`, either
for every service or scoped to one (`service: kms`). A call matches the global config and the
config of its service; each matching config applies. Ratios draw from one seeded
`random.Random`, so a test that sets `seed` gets the same sequence every run; the `*_next`
counters make the next N calls fail deterministically, whatever the ratios.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

_INT_FIELDS = frozenset({"throttle_next", "retry_after_ms", "error_next", "error_status",
                         "drop_next"})


@dataclass
class FaultConfig:
    """One scope's faults. All zero = no fault."""

    latency_ms: float = 0.0          # fixed delay before answering
    jitter_ms: float = 0.0           # extra uniform random delay in [0, jitter_ms]
    throttle_ratio: float = 0.0      # share of calls answered with the service's throttling error
    throttle_next: int = 0           # throttle exactly the next N calls
    retry_after_ms: int = 1000       # x-acs-retry-after on throttling answers
    error_ratio: float = 0.0         # share of calls answered with a 5xx
    error_next: int = 0              # answer the next N calls with a 5xx
    error_status: int = 503          # 503 ServiceUnavailableTemporary or 500 InternalFailure
    outage_seconds: float = 0.0      # every call fails with 503 for this long from now
    drop_ratio: float = 0.0          # share of calls whose connection is closed without answer
    drop_next: int = 0               # drop the next N calls

    @classmethod
    def from_mapping(cls, body: Mapping[str, Any]) -> FaultConfig:
        known = {f.name: f.type for f in fields(cls)}
        unknown = sorted(set(body) - set(known) - {"service", "seed"})
        if unknown:
            raise ValueError(f"faults: unknown field(s) {', '.join(unknown)}; known fields are "
                             f"{', '.join(sorted(known))}, service and seed")
        config = cls()
        for name, value in body.items():
            if name in ("service", "seed"):
                continue
            try:
                setattr(config, name, int(value) if name in _INT_FIELDS else float(value))
            except (TypeError, ValueError):
                raise ValueError(f"faults: field {name} must be a number, got {value!r}") from None
        for name in ("throttle_ratio", "error_ratio", "drop_ratio"):
            if not 0.0 <= getattr(config, name) <= 1.0:
                raise ValueError(f"faults: field {name} must be between 0 and 1")
        if config.error_status not in (500, 502, 503, 504):
            raise ValueError("faults: field error_status must be 500, 502, 503 or 504")
        return config


@dataclass(frozen=True)
class FaultDecision:
    """What to do with one call."""

    delay_s: float = 0.0
    action: str = "pass"   # pass | throttle | error | outage | drop
    error_status: int = 503
    retry_after_ms: int = 1000


class FaultInjector:
    def __init__(self, now: Callable[[], float] = time.monotonic) -> None:
        self._now = now
        self._lock = threading.Lock()
        self._rng = random.Random()
        self._configs: dict[str | None, FaultConfig] = {}
        self._outage_until: dict[str | None, float] = {}

    def set(self, body: Mapping[str, Any]) -> None:
        """Replace the faults of one scope (`service` key, absent = all services)."""
        service = body.get("service") or None
        config = FaultConfig.from_mapping(body)
        with self._lock:
            if "seed" in body:
                self._rng.seed(body["seed"])
            self._configs[service] = config
            if config.outage_seconds > 0:
                self._outage_until[service] = self._now() + config.outage_seconds
            else:
                self._outage_until.pop(service, None)

    def clear(self, service: str | None = None, *, all_scopes: bool = True) -> None:
        with self._lock:
            if all_scopes:
                self._configs.clear()
                self._outage_until.clear()
            else:
                self._configs.pop(service, None)
                self._outage_until.pop(service, None)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {scope or "*": asdict(cfg) for scope, cfg in self._configs.items()}

    def decide(self, service: str) -> FaultDecision:
        delay = 0.0
        action = "pass"
        status = 503
        retry_after = 1000
        with self._lock:
            now = self._now()
            for scope in (None, service):
                cfg = self._configs.get(scope)
                if cfg is None:
                    continue
                delay += cfg.latency_ms / 1000.0
                if cfg.jitter_ms > 0:
                    delay += self._rng.uniform(0, cfg.jitter_ms) / 1000.0
                if action != "pass":
                    continue
                if self._outage_until.get(scope, 0) > now:
                    action, status = "outage", 503
                elif cfg.drop_next > 0:
                    cfg.drop_next -= 1
                    action = "drop"
                elif cfg.throttle_next > 0:
                    cfg.throttle_next -= 1
                    action, retry_after = "throttle", cfg.retry_after_ms
                elif cfg.error_next > 0:
                    cfg.error_next -= 1
                    action, status = "error", cfg.error_status
                elif cfg.drop_ratio and self._rng.random() < cfg.drop_ratio:
                    action = "drop"
                elif cfg.throttle_ratio and self._rng.random() < cfg.throttle_ratio:
                    action, retry_after = "throttle", cfg.retry_after_ms
                elif cfg.error_ratio and self._rng.random() < cfg.error_ratio:
                    action, status = "error", cfg.error_status
        return FaultDecision(delay, action, status, retry_after)
