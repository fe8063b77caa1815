"""The Python floor: the least a Python gRPC provider can do per Mount on this machine.

`python bench/floor.py SOCKET_DIR` serves `v1alpha1.CSIDriverProvider` on
`SOCKET_DIR/alibabacloud.sock` (the same kind of unix socket, the same generated stubs, a thread
pool like the provider's) and answers every Mount by doing the same parsing the provider does
(the attributes JSON, the `objects` YAML with the provider's own bounded loader) and returning one
file with a fixed value. No cache, no backend, no log line, no metrics: what is left is gRPC and
parsing, so the provider's CPU per mount divided by this process's is its overhead over the floor.

`python bench/floor.py SOCKET_DIR --sdk-endpoint HOST[:PORT]` is the **SDK floor**: the same
server, whose Mount also makes one `GetSecretValue` call for the first object through the
official KMS SDK, used plainly (a client built once with the SDK's default `Config`: plain HTTP to
HOST, the AccessKey pair from `ACCESS_KEY_ID` / `SECRET_ACCESS_KEY`), and answers the value it
gets. No provider code runs on that path: it is the least a Python provider that must call the
official SDK can do for a mount whose value is not cached, so a cold mount's CPU divided by this
process's is what the provider adds to the SDK (docs/performance.md).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc

from ack_secrets_provider.core.mount import yaml_text
from ack_secrets_provider.core.proto import service_pb2, service_pb2_grpc
from ack_secrets_provider.core.settings import ProviderSettings

SOCKET_NAME = "alibabacloud.sock"


class FloorServicer(service_pb2_grpc.CSIDriverProviderServicer):
    def __init__(self) -> None:
        limits = ProviderSettings().request_limits
        self.bounds = yaml_text.YamlBounds(max_nodes=limits.yaml_nodes,
                                           max_depth=limits.yaml_depth)

    def Version(  # noqa: N802 - gRPC method name
        self, request: service_pb2.VersionRequest, context: grpc.ServicerContext
    ) -> service_pb2.VersionResponse:
        return service_pb2.VersionResponse(version="v1alpha1", runtime_name="floor",
                                           runtime_version="0")

    def Mount(  # noqa: N802 - gRPC method name
        self, request: service_pb2.MountRequest, context: grpc.ServicerContext
    ) -> service_pb2.MountResponse:
        attrs = json.loads(request.attributes)
        json.loads(request.secrets or "{}")
        objects = yaml_text.load(attrs.get("objects") or "", self.bounds) or []
        name = str(objects[0].get("objectName")) if objects else "empty"
        version, contents = self.value(name)
        return service_pb2.MountResponse(
            object_version=[service_pb2.ObjectVersion(id=name, version=version)],
            files=[service_pb2.File(path=name, mode=0o644, contents=contents)],
        )

    def value(self, name: str) -> tuple[str, bytes]:
        """The object's version and contents: fixed, no upstream."""
        return "v1", b"value"


class SdkFloorServicer(FloorServicer):
    """The floor + one plain official KMS SDK call per Mount (the module docstring)."""

    def __init__(self, endpoint: str) -> None:
        super().__init__()
        from alibabacloud_kms20160120 import models
        from alibabacloud_kms20160120.client import Client
        from alibabacloud_tea_openapi.models import Config
        from darabonba.runtime import RuntimeOptions

        self.request = models.GetSecretValueRequest
        self.client = Client(Config(
            access_key_id=os.environ["ACCESS_KEY_ID"],
            access_key_secret=os.environ["SECRET_ACCESS_KEY"],
            endpoint=endpoint, protocol="http", region_id="cn-hangzhou"))
        self.runtime = RuntimeOptions(connect_timeout=5000, read_timeout=5000)

    def value(self, name: str) -> tuple[str, bytes]:
        body: Any = self.client.get_secret_value_with_options(
            self.request(secret_name=name), self.runtime).body
        return str(body.version_id), str(body.secret_data).encode()


def main(argv: list[str]) -> int:
    # By hand, not argparse: the floor's idle RSS is a figure the provider is compared with, and
    # argparse (with gettext) would add ~0.3 MB to it.
    if len(argv) not in (1, 3) or (len(argv) == 3 and argv[1] != "--sdk-endpoint"):
        sys.stderr.write("usage: floor.py SOCKET_DIR [--sdk-endpoint HOST[:PORT]]\n")
        return 2
    socket_dir, endpoint = argv[0], (argv[2] if len(argv) == 3 else None)
    servicer = SdkFloorServicer(endpoint) if endpoint else FloorServicer()
    server = grpc.server(ThreadPoolExecutor(max_workers=24, thread_name_prefix="grpc"))
    service_pb2_grpc.add_CSIDriverProviderServicer_to_server(servicer, server)
    server.add_insecure_port(f"unix:{os.path.join(socket_dir, SOCKET_NAME)}")
    server.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    server.stop(1).wait()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
