"""The Python floor: the least a Python gRPC provider can do per Mount on this machine.

`python bench/floor.py SOCKET_DIR` serves `v1alpha1.CSIDriverProvider` on
`SOCKET_DIR/alibabacloud.sock` (the same kind of unix socket, the same generated stubs, a thread
pool like the provider's) and answers every Mount by doing the same parsing the provider does
(the attributes JSON, the `objects` YAML with the provider's own bounded loader) and returning one
file with a fixed value. No cache, no backend, no log line, no metrics: what is left is gRPC and
parsing, so the provider's CPU per mount divided by this process's is its overhead over the floor.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

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
        return service_pb2.MountResponse(
            object_version=[service_pb2.ObjectVersion(id=name, version="v1")],
            files=[service_pb2.File(path=name, mode=0o644, contents=b"value")],
        )


def main(socket_dir: str) -> int:
    server = grpc.server(ThreadPoolExecutor(max_workers=24, thread_name_prefix="grpc"))
    service_pb2_grpc.add_CSIDriverProviderServicer_to_server(FloorServicer(), server)
    server.add_insecure_port(f"unix:{os.path.join(socket_dir, SOCKET_NAME)}")
    server.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    server.stop(1).wait()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
