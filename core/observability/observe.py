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
from collections.abc import Mapping
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


def _attributes(attributes: str) -> Mapping[str, object]:
    try:
        attrs = json.loads(attributes) if attributes else {}
    except (ValueError, RecursionError):  # the parser refuses it; the mount is still counted
        return {}
    return attrs if isinstance(attrs, dict) else {}


def _pod_fields(attrs: Mapping[str, object]) -> dict[str, str]:
    return {name: str(attrs[key]) for name, key in _IDENTIFYING.items()
            if isinstance(attrs.get(key), str)}


def _pod(fields: Mapping[str, str], attrs: Mapping[str, object]) -> PodRef | None:
    uid = attrs.get(_POD_UID)
    return PodRef.from_fields({**fields, "pod_uid": uid if isinstance(uid, str) else ""})


class MountObservation:
    """One Mount call in progress; finish it with `succeeded` or `failed` (once).

    The attributes are not decoded here: a successful mount reads its pod from the request the
    mount service parsed, and only a failed one decodes the text (which may not parse at all).
    """

    def __init__(self, attributes: str, metrics: ProviderMetrics,
                 events: EventRecorder | None) -> None:
        self._attributes = attributes
        self.metrics = metrics
        self._events = events
        self._unfinished = threading.Lock()  # held once finished: a cheap thread-safe flag
        self.metrics.mounts_in_flight.inc()

    def _finish(self) -> bool:
        if not self._unfinished.acquire(blocking=False):
            return False
        self.metrics.mounts_in_flight.dec()
        return True

    def succeeded(self, outcome: MountOutcome, seconds: float) -> None:
        if not self._finish():
            return
        attrs = outcome.request.attributes
        fields = _pod_fields(attrs)
        objects = len(outcome.request.objects)
        self.metrics.record_mount(None, seconds, objects)
        if log.isEnabledFor(logging.INFO):  # no record built when the line would be dropped
            log.info(
                "mount succeeded",
                extra={"mount": {**fields, "objects": objects, "files": len(outcome.files),
                                 "duration_ms": round(seconds * 1000, 1), "result": "OK"}},
            )
        debug = log.isEnabledFor(logging.DEBUG)
        if not debug and self._events is None:
            return
        versions = {item.path: item.version for item in outcome.files}
        if debug and versions:
            # File names and version ids are identifiers, never secret material.
            log.debug("mounted versions: %s",
                      ", ".join(f"{path}={version}" for path, version in sorted(versions.items())),
                      extra={"mount": fields})
        if self._events is not None:
            pod = _pod(fields, attrs)
            if pod is not None:
                self._events.mount_succeeded(pod, fields.get("spc"), versions)

    def failed(self, error: ProviderError, seconds: float) -> None:
        if not self._finish():
            return
        attrs = _attributes(self._attributes)
        fields = _pod_fields(attrs)
        self.metrics.record_mount(error.code, seconds, None)
        log.warning(
            "mount failed: %s", error.message,
            extra={"mount": {**fields, "duration_ms": round(seconds * 1000, 1),
                             "result": error.code.name, "reason": error.reason}},
        )
        if self._events is not None:
            pod = _pod(fields, attrs)
            if pod is not None:
                self._events.mount_failed(pod, fields.get("spc"), error.message)


class MountObserver:
    """Creates one observation per mount.

    `metrics`: where to record. `events`: the Kubernetes Event recorder, or None when Events are
    off.
    """

    def __init__(self, metrics: ProviderMetrics, events: EventRecorder | None = None) -> None:
        self.metrics = metrics
        self.events = events

    def start(self, attributes: str) -> MountObservation:
        return MountObservation(attributes, self.metrics, self.events)
