"""The one path every upstream fetch takes: retries with a per-endpoint budget.

The mount orchestrator hands the fetcher units of work (one object, or a batch of objects of one
backend, endpoint and identity); the fetcher owns what wraps the backend call: retry policy and
budget (core/retry.py), and is the place where caching, coalescing and rate limiting attach.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

from ack_secrets_provider.core import metrics
from ack_secrets_provider.core.backend import Backend, FetchContext, SecretValue
from ack_secrets_provider.core.settings import ProviderSettings
from ack_secrets_provider.core.spec import ObjectSpec


@dataclass(frozen=True)
class FetchUnit:
    """Objects fetched in one backend call: one object, or a batch of one endpoint/identity."""

    backend: Backend
    specs: tuple[ObjectSpec, ...]
    context: FetchContext

    def describe(self) -> str:
        if len(self.specs) == 1:
            return self.specs[0].describe()
        names = ", ".join(repr(spec.object_name) for spec in self.specs)
        return f"objects {names} ({self.backend.object_type} batch)"


class Fetcher:
    """Runs fetch units through the retry policy with one retry budget per endpoint."""

    def __init__(self, settings: ProviderSettings) -> None:
        self.settings = settings
        self._budgets: dict[tuple[str, str], object] = {}
        self._lock = threading.Lock()

    def _budget(self, unit: FetchUnit) -> object:
        from ack_secrets_provider.core.retry import RetryBudget

        key = (unit.backend.service, unit.context.endpoint.address)
        with self._lock:
            budget = self._budgets.get(key)
            if budget is None:
                budget = RetryBudget.from_policy(self.settings.retry)
                self._budgets[key] = budget
            return budget

    def fetch(self, unit: FetchUnit) -> Sequence[SecretValue]:
        from ack_secrets_provider.core.retry import call_with_retries

        calls = metrics.upstream_calls(unit.backend, batch=len(unit.specs) > 1)

        def attempt() -> Sequence[SecretValue]:
            with calls.attempt():  # upstream call/result/latency/retry metrics
                if len(unit.specs) == 1:
                    return [unit.backend.fetch(unit.specs[0], unit.context)]
                return unit.backend.fetch_batch(unit.specs, unit.context)

        return call_with_retries(
            attempt,
            deadline=unit.context.deadline,
            policy=self.settings.retry,
            budget=self._budget(unit),  # type: ignore[arg-type]
            what=unit.describe(),
        )
