"""The thin gRPC server: decode the driver's request, call the mount service, encode or map errors.

It listens on `<provider-volume>/alibabacloud.sock` with owner-only permissions, serves the
driver's `v1alpha1.CSIDriverProvider` and the standard gRPC health service on the same socket,
and on SIGTERM stops accepting, lets in-flight mounts finish within a grace period and removes
the socket.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import stat
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from ack_secrets_provider.core import RUNTIME_NAME, __version__
from ack_secrets_provider.core.errors import (
    InternalError,
    InvalidArgument,
    ProviderBusy,
    ProviderError,
)
from ack_secrets_provider.core.mount.limits import RAISE
from ack_secrets_provider.core.mount.service import MountOutcome, MountService
from ack_secrets_provider.core.observability.observe import MountObservation, MountObserver
from ack_secrets_provider.core.proto import service_pb2, service_pb2_grpc
from ack_secrets_provider.core.resilience.deadline import Deadline
from ack_secrets_provider.core.settings import ProviderSettings

log = logging.getLogger(__name__)

SOCKET_NAME = "alibabacloud.sock"
PROTOCOL_VERSION = "v1alpha1"
SERVICE_NAME = "v1alpha1.CSIDriverProvider"
#: server threads beyond the Mount cap: Version, the health service and the fast refusals of
#: Mounts over the cap always find a free thread, however long the admitted Mounts take
SPARE_WORKERS = 8


class ProviderServicer(service_pb2_grpc.CSIDriverProviderServicer):
    """Version and Mount. All logic lives in MountService; this only translates."""

    def __init__(self, service: MountService, observer: MountObserver) -> None:
        self.service = service
        self.observer = observer
        self._mount_limit = service.settings.max_concurrent_mounts
        self._mount_slots = threading.BoundedSemaphore(self._mount_limit)
        self._request_limit = service.settings.request_limits.request_bytes

    def Version(  # noqa: N802 - gRPC method name
        self, request: service_pb2.VersionRequest, context: grpc.ServicerContext
    ) -> service_pb2.VersionResponse:
        return service_pb2.VersionResponse(
            version=PROTOCOL_VERSION, runtime_name=RUNTIME_NAME, runtime_version=__version__
        )

    @staticmethod
    def _refuse(observation: MountObservation, started: float, context: grpc.ServicerContext,
                error: ProviderError) -> None:
        """Count and log the refusal like any failed Mount, then answer it (abort raises)."""
        observation.failed(error, time.monotonic() - started)
        context.abort(error.code, error.message)

    def Mount(  # noqa: N802 - gRPC method name
        self, request: service_pb2.MountRequest, context: grpc.ServicerContext
    ) -> service_pb2.MountResponse:
        remaining = context.time_remaining()
        timeout = self.service.settings.default_mount_timeout
        if remaining is not None:
            timeout = min(timeout, max(0.0, remaining - 0.05))  # leave room to answer
        # The caller may give up before the deadline (the driver cancels the call): gRPC then
        # runs the callback and the mount stops retrying and calling upstream (deadline.py).
        # It runs when a finished call ends too, with nothing left to stop. A call that already
        # ended before this handler ran (cancelled, or its deadline passed) is not registered.
        cancelled = threading.Event()
        if not context.add_callback(cancelled.set):
            cancelled.set()
        deadline = Deadline.after(timeout, cancelled)
        started = time.monotonic()
        size = request.ByteSize()
        # a request over the bound is not even decoded (its JSON could cost 10x its size)
        observation = self.observer.start(
            request.attributes if size <= self._request_limit else "")
        if size > self._request_limit:
            self._refuse(observation, started, context, InvalidArgument(
                f"the Mount request is {size} bytes, above the provider's limit of "
                f"{self._request_limit} (--max-request-bytes): the SecretProviderClass "
                "parameters and the pod's volumeAttributes together are too large; remove "
                f"what the provider does not read, {RAISE}"
            ))
        if not self._mount_slots.acquire(blocking=False):
            self._refuse(observation, started, context, ProviderBusy(
                f"the provider is already serving {self._mount_limit} Mounts, its limit "
                "(--max-concurrent-mounts); the driver retries this one shortly. If this "
                "lasts, an upstream is slow (see the provider's upstream metrics) or the limit "
                "is too low for this node"
            ))
        try:
            outcome = self.service.mount(
                request.attributes, request.secrets, request.permission, deadline
            )
            # built here, so an answer that cannot be encoded (a plugin's version that is no
            # text) is mapped like any failure, not left to gRPC's UNKNOWN with its message
            response = _response(outcome)
        except ProviderError as exc:
            observation.failed(exc, time.monotonic() - started)
            context.abort(exc.code, exc.message)
        except Exception as exc:  # a bug: never crash the server, never leak details
            log.exception("mount failed unexpectedly")
            error = InternalError(
                f"the provider failed unexpectedly ({type(exc).__name__}); see the provider's logs"
            )
            observation.failed(error, time.monotonic() - started)
            context.abort(error.code, error.message)
        finally:
            self._mount_slots.release()
        observation.succeeded(outcome, time.monotonic() - started)
        return response


def _response(outcome: MountOutcome) -> service_pb2.MountResponse:
    """The driver's answer: every file, and the version of each."""
    files = [
        service_pb2.File(path=item.path, mode=item.mode, contents=item.contents)
        for item in outcome.files
    ]
    versions = [
        service_pb2.ObjectVersion(id=item.path, version=item.version)
        for item in outcome.files
    ]
    if not versions:
        # The driver fails a mount with no object versions; an empty objects list is a
        # valid (empty) mount, so report one placeholder version that reveals nothing.
        versions = [service_pb2.ObjectVersion(id="secretproviderclass", version="empty")]
    return service_pb2.MountResponse(object_version=versions, files=files)


def connection_options(settings: ProviderSettings) -> list[tuple[str, int]]:
    """Keepalive and idle limits: a peer that stops answering pings, never finishes its
    handshake or makes no call for a long time is disconnected instead of being kept forever
    (the driver reconnects by itself when it needs the provider again)."""
    def ms(seconds: float) -> int:
        return max(1, round(seconds * 1000))

    return [
        ("grpc.keepalive_time_ms", ms(settings.grpc_keepalive_time)),
        ("grpc.keepalive_timeout_ms", ms(settings.grpc_keepalive_timeout)),
        # the server waits this long for a ping's answer (keepalive_timeout alone does not
        # close the connection in grpc >= 1.5x)
        ("grpc.http2.ping_timeout_ms", ms(settings.grpc_keepalive_timeout)),
        ("grpc.keepalive_permit_without_calls", 1),  # ping idle connections too
        ("grpc.http2.max_pings_without_data", 0),  # keep pinging while no call runs
        ("grpc.server_handshake_timeout_ms", ms(settings.grpc_keepalive_timeout)),
        ("grpc.max_connection_idle_ms", ms(settings.grpc_max_connection_idle)),
    ]


def _remove_stale_socket(path: Path) -> None:
    """Remove a leftover socket; refuse to steal one another live process is serving."""
    if not path.exists() and not path.is_symlink():
        return
    if not stat.S_ISSOCK(path.lstat().st_mode):
        raise RuntimeError(f"{path} exists and is not a socket; remove it or choose another "
                           "--provider-volume")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(str(path))
    except OSError:
        path.unlink()  # nobody listens: stale from a previous run
        return
    finally:
        probe.close()
    raise RuntimeError(
        f"another process is already serving {path}; stop it first (two providers cannot share "
        "one socket)"
    )


class ProviderServer:
    """Owns the gRPC server, the socket file and the health status (not the mount service it
    serves, which its owner closes: core/server/app.py)."""

    def __init__(
        self,
        service: MountService,
        socket_dir: str | os.PathLike[str],
        *,
        observer: MountObserver,
        grace_period: float = 30.0,
    ) -> None:
        self.service = service
        self.socket_path = Path(socket_dir) / SOCKET_NAME
        self.grace_period = grace_period
        self.health = health.HealthServicer()
        settings = service.settings
        self._server = grpc.server(
            ThreadPoolExecutor(max_workers=settings.max_concurrent_mounts + SPARE_WORKERS,
                               thread_name_prefix="grpc"),
            # files are checked against settings.max_response_bytes; this only needs room above
            options=[("grpc.max_send_message_length", settings.max_response_bytes + 1024 * 1024),
                     *connection_options(settings)],
        )
        service_pb2_grpc.add_CSIDriverProviderServicer_to_server(
            ProviderServicer(service, observer), self._server
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._server)
        self._stopped = threading.Event()

    @property
    def target(self) -> str:
        return f"unix:{self.socket_path}"

    def start(self) -> None:
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_socket(self.socket_path)
        # The socket's permissions are the driver contract's only protection: owner-only.
        old_umask = os.umask(0o177)
        try:
            self._server.add_insecure_port(self.target)
            self._server.start()
        finally:
            os.umask(old_umask)
        with contextlib.suppress(OSError):
            os.chmod(self.socket_path, 0o600)
        for name in ("", SERVICE_NAME):
            self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        log.info("listening on %s", self.socket_path)

    def stop(self, grace: float | None = None) -> None:
        """Stop accepting, let in-flight mounts finish within `grace`, remove the socket."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        self.health.enter_graceful_shutdown()
        event = self._server.stop(self.grace_period if grace is None else grace)
        event.wait()
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        log.info("stopped; removed %s", self.socket_path)

    def wait(self, timeout: float | None = None) -> bool:
        return self._server.wait_for_termination(timeout)

    def __enter__(self) -> ProviderServer:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop(grace=2.0)
