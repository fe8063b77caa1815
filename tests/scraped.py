"""Metric values as a Prometheus scrape sees them: parsed from the provider's exposition (the
body `/metrics` serves), so tests observe what users observe and the product keeps no
test-only accessor."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping

from prometheus_client.parser import text_string_to_metric_families

from ack_secrets_provider.core.observability.metrics import ProviderMetrics


def sample(metrics: ProviderMetrics, name: str, labels: Mapping[str, str] | None = None) -> float:
    """The value of sample `name` with exactly `labels` (0.0 when it does not exist yet)."""
    _, _, body = metrics.exposition()
    wanted = dict(labels or {})
    for family in text_string_to_metric_families(body.decode()):
        for found in family.samples:
            if found.name == name and found.labels == wanted:
                return float(found.value)
    return 0.0


def total(metrics: ProviderMetrics, name: str, labels: Mapping[str, str]) -> float:
    """The sum of the samples `name` whose labels include `labels` (any value for the others)."""
    _, _, body = metrics.exposition()
    wanted = dict(labels).items()
    return sum(float(found.value) for family in text_string_to_metric_families(body.decode())
               for found in family.samples
               if found.name == name and wanted <= found.labels.items())


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Until `condition()` holds (checked every 10 ms); AssertionError naming `what` after
    `timeout` seconds."""
    pause = threading.Event()
    for _ in range(int(timeout * 100)):
        if condition():
            return
        pause.wait(0.01)
    raise AssertionError(f"timed out waiting until {what}")
