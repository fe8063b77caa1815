"""Per-mount observation: the one log line per mount (metrics and events attach here).

Log lines carry pod, namespace, SecretProviderClass, object count, duration and result, never a
secret value or token.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ack_secrets_provider.core.errors import ProviderError

if TYPE_CHECKING:
    from ack_secrets_provider.core.mount import MountOutcome

log = logging.getLogger("ack_secrets_provider.mount")


def _pod_fields(attributes: str) -> dict[str, str]:
    try:
        attrs = json.loads(attributes) if attributes else {}
    except ValueError:
        return {}
    if not isinstance(attrs, dict):
        return {}
    keys = {
        "pod": "csi.storage.k8s.io/pod.name",
        "namespace": "csi.storage.k8s.io/pod.namespace",
        "spc": "secretProviderClass",
    }
    return {name: str(attrs[key]) for name, key in keys.items() if isinstance(attrs.get(key), str)}


@dataclass
class MountObservation:
    fields: dict[str, str]

    def succeeded(self, outcome: MountOutcome, seconds: float) -> None:
        log.info(
            "mount succeeded",
            extra={"mount": {**self.fields, "objects": len(outcome.request.objects),
                             "files": len(outcome.files), "duration_ms": round(seconds * 1000, 1),
                             "result": "OK"}},
        )

    def failed(self, error: ProviderError, seconds: float) -> None:
        log.warning(
            "mount failed: %s", error.message,
            extra={"mount": {**self.fields, "duration_ms": round(seconds * 1000, 1),
                             "result": error.code.name, "reason": error.reason}},
        )


class MountObserver:
    """Creates one observation per mount. Subclassed/extended for metrics and events."""

    def start(self, attributes: str) -> MountObservation:
        return MountObservation(_pod_fields(attributes))
