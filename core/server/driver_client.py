"""Helpers to drive a real provider over its real unix socket, as the driver does.

Used by the test suite, the benchmark, the demo and plugin authors' own tests:

    with running_provider(settings, socket_dir) as provider:
        response = provider.mount(driver_attributes(spc_parameters, pod=PodRef(...)))

`driver_attributes` builds the attributes JSON exactly as the Secrets Store CSI driver v1.6 does:
the SecretProviderClass parameters, then the pod's volume context copied over them, then the
`csi.storage.k8s.io/*` keys and, if given, the service-account tokens.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc

from ack_secrets_provider.core.observability.metrics import ProviderMetrics
from ack_secrets_provider.core.proto import service_pb2, service_pb2_grpc
from ack_secrets_provider.core.server.app import App, build_app
from ack_secrets_provider.core.server.grpc_server import ProviderServer
from ack_secrets_provider.core.settings import ProviderSettings


@dataclass(frozen=True)
class PodRef:
    name: str = "app-0"
    namespace: str = "default"
    uid: str = "6a1c5a1e-0000-4000-8000-000000000001"
    service_account: str = "default"


def driver_attributes(
    parameters: Mapping[str, str],
    *,
    pod: PodRef | None = PodRef(),
    spc_name: str = "app-secrets",
    volume_attributes: Mapping[str, str] | None = None,
    tokens: Mapping[str, str] | None = None,
    token_expiration: str = "2099-01-01T00:00:00Z",
) -> str:
    """The attributes JSON string the driver sends for one pod (or the sync controller)."""
    attrs: dict[str, str] = dict(parameters)
    attrs.update(volume_attributes or {})
    attrs["secretProviderClass"] = spc_name
    if pod is not None:
        attrs.update({
            "csi.storage.k8s.io/pod.name": pod.name,
            "csi.storage.k8s.io/pod.namespace": pod.namespace,
            "csi.storage.k8s.io/pod.uid": pod.uid,
            "csi.storage.k8s.io/serviceAccount.name": pod.service_account,
            "csi.storage.k8s.io/ephemeral": "true",
        })
    if tokens:
        attrs["csi.storage.k8s.io/serviceAccount.tokens"] = json.dumps({
            audience: {"token": token, "expirationTimestamp": token_expiration}
            for audience, token in tokens.items()
        })
    return json.dumps(attrs)


#: The driver's client configuration (secrets-store-csi-driver v1.6,
#: pkg/secrets-store/provider_client.go `ServiceConfig`): wait for the socket to be ready and
#: retry UNAVAILABLE by itself, 3 attempts, backoff 1 s to 10 s (multiplier 1.1). The driver
#: spells the keys "MaxAttempts" etc., which Go's case-insensitive JSON decoding accepts; gRPC
#: C-core needs the canonical spelling used here. This is why the provider answers UNAVAILABLE
#: only when it is not ready: anything else would be tried three times.
DRIVER_SERVICE_CONFIG = json.dumps({"methodConfig": [{
    "name": [{"service": "v1alpha1.CSIDriverProvider"}],
    "waitForReady": True,
    "retryPolicy": {
        "maxAttempts": 3, "initialBackoff": "1s", "maxBackoff": "10s",
        "backoffMultiplier": 1.1, "retryableStatusCodes": ["UNAVAILABLE"],
    },
}]})
#: the driver's default --max-call-recv-msg-size
DRIVER_MAX_RECV_BYTES = 4 * 1024 * 1024


class ProviderClient:
    """The driver's side of the socket: the same dial options and retry policy as the driver.

    `driver_retries=False` sends each call once, to see the provider's own first answer (a test
    of a refusal, a tool that reports rather than waits).
    """

    def __init__(self, socket_path: str | Path,
                 max_receive_bytes: int = DRIVER_MAX_RECV_BYTES, *,
                 driver_retries: bool = True) -> None:
        self.target = f"unix:{socket_path}"
        options: list[tuple[str, str | int]] = [
            ("grpc.default_authority", "localhost"),
            ("grpc.max_receive_message_length", max_receive_bytes),
        ]
        if driver_retries:
            options += [("grpc.service_config", DRIVER_SERVICE_CONFIG), ("grpc.enable_retries", 1)]
        else:
            options += [("grpc.enable_retries", 0)]
        self.channel = grpc.insecure_channel(self.target, options=options)
        self.stub = service_pb2_grpc.CSIDriverProviderStub(self.channel)

    def version(self, timeout: float = 10.0) -> service_pb2.VersionResponse:
        return self.stub.Version(service_pb2.VersionRequest(version="v1alpha1"), timeout=timeout,
                                 wait_for_ready=True)

    def mount(
        self,
        attributes: str,
        *,
        secrets: str = "null",
        permission: str = "420",  # the driver's json.Marshal(os.FileMode(0644))
        target_path: str = "/var/lib/kubelet/pods/x/volumes/kubernetes.io~csi/v/mount",
        timeout: float | None = 30.0,
    ) -> service_pb2.MountResponse:
        request = service_pb2.MountRequest(
            attributes=attributes, secrets=secrets, permission=permission,
            target_path=target_path,
        )
        return self.stub.Mount(request, timeout=timeout, wait_for_ready=True)

    def close(self) -> None:
        self.channel.close()


@dataclass
class RunningProvider:
    """A provider wired and started as `serve` does (`app`), and a driver-side client."""

    app: App
    client: ProviderClient

    @property
    def server(self) -> ProviderServer:
        return self.app.server

    @property
    def metrics(self) -> ProviderMetrics:
        """What the provider recorded (its own registry)."""
        return self.app.metrics

    @property
    def socket_path(self) -> Path:
        return self.server.socket_path

    def version(self) -> service_pb2.VersionResponse:
        return self.client.version()

    def mount(self, attributes: str, **kwargs: object) -> service_pb2.MountResponse:
        return self.client.mount(attributes, **kwargs)  # type: ignore[arg-type]


@contextmanager
def running_provider(
    settings: ProviderSettings,
    socket_dir: str | Path | None = None,
    *,
    autoload_third_party: bool = True,
    clock: Callable[[], float] = time.time,
) -> Iterator[RunningProvider]:
    """Start a provider with `settings` on `<socket_dir>/alibabacloud.sock`; stop it after.

    `clock`: the epoch seconds credential lifetimes are measured on (build_app's).
    """
    with tempfile.TemporaryDirectory(prefix="ack-sock-") as tmp:
        app = build_app(settings, str(socket_dir or tmp), autoload_third_party=autoload_third_party,
                        grace_period=2.0, clock=clock)
        app.start()
        client = ProviderClient(app.server.socket_path)
        try:
            yield RunningProvider(app, client)
        finally:
            client.close()
            app.stop()


def files_of(response: service_pb2.MountResponse) -> dict[str, bytes]:
    return {item.path: item.contents for item in response.files}


def versions_of(response: service_pb2.MountResponse) -> dict[str, str]:
    return {item.id: item.version for item in response.object_version}
