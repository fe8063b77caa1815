"""Kubernetes Events on application pods: failed mounts and rotated objects.

Why: driver v1.6 swallows the errors of periodic remounts and emits no event, so a rotation that
stopped working (revoked permission, deleted secret) is invisible; and nobody sees when a rotation
did change a file. The provider therefore posts core/v1 Events on the pod:

- `SecretMountFailed` (Warning) when a mount of a pod fails, with the provider's error message
  (messages never contain secret values or tokens, see core/errors.py);
- `SecretRotated` (Normal) when an object's version differs from the version the previous mount
  of the same pod returned. The last versions are kept per pod UID, SecretProviderClass and file
  in a bounded in-memory map (versions are identifiers, never secret; values are never kept).

Events are rate-limited (one per pod UID and reason per `PER_POD_INTERVAL`, and a global token
bucket of `GLOBAL_PER_MINUTE`) and sent asynchronously: `record_*` only puts a prepared body on a
bounded queue that one worker thread drains, so a slow or unreachable API server never slows a
mount; when the queue is full the event is dropped and counted.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cachetools import LRUCache

from ack_secrets_provider.core.cloud.kube import KubeClient, KubeError
from ack_secrets_provider.core.errors import UnexpectedAnswer
from ack_secrets_provider.core.observability.logs import redact
from ack_secrets_provider.core.observability.metrics import ProviderMetrics

log = logging.getLogger(__name__)

COMPONENT = "csi-secrets-store-provider-alibabacloud"
REASON_FAILED = "SecretMountFailed"
REASON_ROTATED = "SecretRotated"
#: Kubernetes truncates longer event messages; keep ours inside the limit
MAX_MESSAGE = 1024
#: files listed by name in one rotation event
MAX_FILES_LISTED = 10
#: seconds between two events of the same reason on the same pod
PER_POD_INTERVAL = 300.0
#: events per minute from the whole provider (a burst of as many is allowed)
GLOBAL_PER_MINUTE = 60.0
#: how many events may wait for the worker; more are dropped and counted
QUEUE_SIZE = 256
#: (pod UID, reason) pairs and (pod UID, SecretProviderClass, file) versions remembered
MAX_TRACKED = 20_000

Clock = Callable[[], float]


@dataclass(frozen=True)
class PodRef:
    """The pod a mount is for, from the driver's `csi.storage.k8s.io/pod.*` attributes."""

    name: str
    namespace: str
    uid: str

    @classmethod
    def from_fields(cls, fields: Mapping[str, str]) -> PodRef | None:
        """None for mounts without a pod (the driver's secret-sync controller)."""
        name, namespace, uid = fields.get("pod"), fields.get("namespace"), fields.get("pod_uid")
        if not (name and namespace and uid):
            return None
        return cls(name, namespace, uid)


class RotationTracker:
    """Last version per (pod UID, SecretProviderClass, file); bounded, least recent dropped."""

    def __init__(self) -> None:
        self._versions: LRUCache[tuple[str, str, str], str] = LRUCache(MAX_TRACKED)
        self._lock = threading.Lock()

    def update(self, uid: str, spc: str, versions: Mapping[str, str]) -> list[tuple[str, str, str]]:
        """Record `versions` ({file: version}); returns (file, old, new) for each change."""
        changes = []
        with self._lock:
            for path, version in versions.items():
                key = (uid, spc, path)
                old = self._versions.get(key)
                self._versions[key] = version
                if old is not None and old != version:
                    changes.append((path, old, version))
        return changes

    def __len__(self) -> int:
        with self._lock:
            return len(self._versions)


class RateLimiter:
    """One event per (pod UID, reason) per interval, and a global token bucket."""

    def __init__(self, per_key_interval: float, global_per_minute: float, *,
                 clock: Clock = time.monotonic) -> None:
        self.per_key_interval = per_key_interval
        self.rate = global_per_minute / 60.0
        self.burst = max(1.0, global_per_minute)
        self.clock = clock
        self._tokens = self.burst
        self._filled_at = clock()
        self._last: LRUCache[tuple[str, str], float] = LRUCache(MAX_TRACKED)
        self._lock = threading.Lock()

    def allow(self, key: tuple[str, str]) -> bool:
        with self._lock:
            now = self.clock()
            last = self._last.get(key)
            if last is not None and now - last < self.per_key_interval:
                return False
            self._tokens = min(self.burst, self._tokens + (now - self._filled_at) * self.rate)
            self._filled_at = now
            if self._tokens < 1.0:
                return False
            self._tokens -= 1.0
            self._last[key] = now
            return True


def _timestamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class EventRecorder:
    """Prepares, rate-limits and asynchronously posts Events through a KubeClient."""

    def __init__(
        self,
        client: KubeClient,
        *,
        metrics: ProviderMetrics,
        node_name: str | None = None,
        queue_size: int = QUEUE_SIZE,
    ) -> None:
        self.client = client
        self.metrics = metrics
        self.node_name = node_name
        self.limiter = RateLimiter(PER_POD_INTERVAL, GLOBAL_PER_MINUTE)
        self.rotations = RotationTracker()
        self._queue: queue.Queue[tuple[str, str, dict[str, Any]] | None] = queue.Queue(
            maxsize=queue_size)
        self._thread: threading.Thread | None = None
        self._sequence = 0
        self._lock = threading.Lock()

    # -- what the mount observer calls (never blocks) ------------------------------------------

    def mount_failed(self, pod: PodRef, spc: str | None, message: str) -> None:
        text = (f"SecretProviderClass {spc or '?'}: mount by the Alibaba Cloud provider failed "
                f"(the pod keeps its previous files if it had any): {message}")
        self._emit(pod, REASON_FAILED, "Warning", text)

    def mount_succeeded(self, pod: PodRef, spc: str | None, versions: Mapping[str, str]) -> None:
        changes = self.rotations.update(pod.uid, spc or "", versions)
        if not changes:
            return
        listed = ", ".join(f"{path} {old} -> {new}" for path, old, new in
                           changes[:MAX_FILES_LISTED])
        more = len(changes) - MAX_FILES_LISTED
        text = (f"SecretProviderClass {spc or '?'}: {len(changes)} object(s) changed version: "
                f"{listed}" + (f" and {more} more" if more > 0 else ""))
        self._emit(pod, REASON_ROTATED, "Normal", text)

    # -- machinery ------------------------------------------------------------------------------

    def _emit(self, pod: PodRef, reason: str, kind: str, message: str) -> None:
        if not self.limiter.allow((pod.uid, reason)):
            self.metrics.record_event(reason, "suppressed")
            log.debug("event %s on pod %s/%s suppressed by the rate limit", reason,
                      pod.namespace, pod.name)
            return
        body = self._body(pod, reason, kind, message)
        try:
            self._queue.put_nowait((pod.namespace, reason, body))
        except queue.Full:
            self.metrics.record_event(reason, "dropped")
            log.warning("event %s on pod %s/%s dropped: the event queue is full (the "
                        "Kubernetes API is slow or unreachable)", reason, pod.namespace, pod.name)

    def _body(self, pod: PodRef, reason: str, kind: str, message: str) -> dict[str, Any]:
        now = time.time()
        with self._lock:
            self._sequence += 1
            suffix = f"{int(now * 1e9):x}{self._sequence % 4096:03x}"
        # Messages hold no secret by construction (core/errors.py); what a user put where a name
        # belongs (a token pasted as objectName) is redacted here as in the log lines.
        message = redact(message)
        if len(message) > MAX_MESSAGE:
            message = message[:MAX_MESSAGE - 1] + "…"
        stamp = _timestamp(now)
        return {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{pod.name[:200]}.{suffix}", "namespace": pod.namespace},
            "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": pod.name,
                               "namespace": pod.namespace, "uid": pod.uid},
            "reason": reason,
            "message": message,
            "type": kind,
            "source": {"component": COMPONENT, **({"host": self.node_name}
                                                  if self.node_name else {})},
            "reportingComponent": COMPONENT,
            "reportingInstance": self.node_name or COMPONENT,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="kube-events", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Send what is queued (within `timeout`), then stop the worker."""
        if self._thread is None:
            return
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=timeout)
        self._thread.join(timeout)
        self._thread = None

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                namespace, reason, body = item
                self._send(namespace, reason, body)
            finally:
                self._queue.task_done()

    def _send(self, namespace: str, reason: str, body: dict[str, Any]) -> None:
        path = f"/api/v1/namespaces/{urllib.parse.quote(namespace, safe='')}/events"
        try:
            self.client.request("POST", path, body)
        except (KubeError, UnexpectedAnswer) as exc:
            self.metrics.record_event(reason, "failed")
            log.warning("could not create event %s: %s", reason, exc)
        except Exception:  # the worker must survive anything
            self.metrics.record_event(reason, "failed")
            log.exception("could not create event %s", reason)
        else:
            self.metrics.record_event(reason, "sent")
