"""Per-mount observation: the one log line, the metrics and the Events of each Mount call.

The gRPC layer calls `MountObserver.start(attributes)` when a Mount arrives and then exactly one
of `succeeded`/`failed` on the returned observation. Log lines carry pod, namespace,
SecretProviderClass, object and file counts, duration and result, never a secret value or token
(only the identifying attributes are read from the request; tokens and parameters are not).
"""

from __future__ import annotations

import json
import logging
import threading
from typing import TYPE_CHECKING

from ack_secrets_provider.core.errors import ProviderError
from ack_secrets_provider.core.observability.events import EventRecorder, PodRef

if TYPE_CHECKING:
    from ack_secrets_provider.core.mount.service import MountOutcome
    from ack_secrets_provider.core.observability.metrics import ProviderMetrics

log = logging.getLogger("ack_secrets_provider.mount")

#: the driver's attributes that identify a mount (never tokens or SecretProviderClass parameters)
_IDENTIFYING = {
    "pod": "csi.storage.k8s.io/pod.name",
    "namespace": "csi.storage.k8s.io/pod.namespace",
    "spc": "secretProviderClass",
}
_POD_UID = "csi.storage.k8s.io/pod.uid"


def _attributes(attributes: str) -> dict[str, object]:
    try:
        attrs = json.loads(attributes) if attributes else {}
    except (ValueError, RecursionError):  # the parser refuses it; the mount is still counted
        return {}
    return attrs if isinstance(attrs, dict) else {}


def _pod_fields(attrs: dict[str, object]) -> dict[str, str]:
    return {name: str(attrs[key]) for name, key in _IDENTIFYING.items()
            if isinstance(attrs.get(key), str)}


class MountObservation:
    """One Mount call in progress; finish it with `succeeded` or `failed` (once)."""

    def __init__(self, fields: dict[str, str], pod_uid: str | None,
                 metrics: ProviderMetrics, events: EventRecorder | None) -> None:
        self.fields = fields
        self.pod_uid = pod_uid
        self.metrics = metrics
        self._events = events
        self._finished = threading.Event()
        self.metrics.mounts_in_flight.inc()

    def _finish(self) -> bool:
        if self._finished.is_set():
            return False
        self._finished.set()
        self.metrics.mounts_in_flight.dec()
        return True

    def _pod(self) -> PodRef | None:
        return PodRef.from_fields({**self.fields, "pod_uid": self.pod_uid or ""})

    def succeeded(self, outcome: MountOutcome, seconds: float) -> None:
        if not self._finish():
            return
        objects = len(outcome.request.objects)
        self.metrics.record_mount(None, seconds, objects)
        if log.isEnabledFor(logging.INFO):  # no record built when the line would be dropped
            log.info(
                "mount succeeded",
                extra={"mount": {**self.fields, "objects": objects, "files": len(outcome.files),
                                 "duration_ms": round(seconds * 1000, 1), "result": "OK"}},
            )
        versions = {item.path: item.version for item in outcome.files}
        if log.isEnabledFor(logging.DEBUG) and versions:
            # File names and version ids are identifiers, never secret material.
            log.debug("mounted versions: %s",
                      ", ".join(f"{path}={version}" for path, version in sorted(versions.items())),
                      extra={"mount": dict(self.fields)})
        if self._events is not None:
            pod = self._pod()
            if pod is not None:
                self._events.mount_succeeded(pod, self.fields.get("spc"), versions)

    def failed(self, error: ProviderError, seconds: float) -> None:
        if not self._finish():
            return
        self.metrics.record_mount(error.code, seconds, None)
        log.warning(
            "mount failed: %s", error.message,
            extra={"mount": {**self.fields, "duration_ms": round(seconds * 1000, 1),
                             "result": error.code.name, "reason": error.reason}},
        )
        if self._events is not None:
            pod = self._pod()
            if pod is not None:
                self._events.mount_failed(pod, self.fields.get("spc"), error.message)


class MountObserver:
    """Creates one observation per mount.

    `metrics`: where to record. `events`: the Kubernetes Event recorder, or None when Events are
    off.
    """

    def __init__(self, metrics: ProviderMetrics, events: EventRecorder | None = None) -> None:
        self.metrics = metrics
        self.events = events

    def start(self, attributes: str) -> MountObservation:
        attrs = _attributes(attributes)
        uid = attrs.get(_POD_UID)
        return MountObservation(_pod_fields(attrs), uid if isinstance(uid, str) else None,
                                self.metrics, self.events)
