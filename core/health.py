"""HTTP health endpoints for kubelet probes.

`/healthz` (path configurable) calls the gRPC health service over the provider socket, exactly as
a client on the node would see it; `/readyz` answers 200 once the socket is bound and plugins are
loaded. The server binds the address it is told and reports a bind failure instead of ignoring it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

log = logging.getLogger(__name__)


def grpc_health_check(target: str, timeout: float) -> bool:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    try:
        with grpc.insecure_channel(target, options=[("grpc.default_authority", "localhost")]) as ch:
            response = health_pb2_grpc.HealthStub(ch).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=timeout
            )
        return bool(response.status == health_pb2.HealthCheckResponse.SERVING)
    except grpc.RpcError:
        return False


class HealthServer:
    def __init__(
        self,
        address: str,
        port: int,
        *,
        healthz_path: str,
        live: Callable[[], bool],
        ready: Callable[[], bool],
        extra_routes: dict[str, Callable[[], tuple[int, str, bytes]]] | None = None,
    ) -> None:
        routes: dict[str, Callable[[], tuple[int, str, bytes]]] = {
            healthz_path: lambda: _status(live()),
            "/readyz": lambda: _status(ready()),
            **(extra_routes or {}),
        }

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server API
                route = routes.get(self.path.split("?", 1)[0])
                if route is None:
                    code, ctype, body = 404, "text/plain", b"not found\n"
                else:
                    code, ctype, body = route()
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                log.debug("health: " + format, *args)

        # Raises OSError when the port is taken: the caller must not start half-healthy.
        self._httpd = ThreadingHTTPServer((address, port), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True,
                                        name="health-http")

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def _status(ok: bool) -> tuple[int, str, bytes]:
    return (200, "text/plain", b"ok\n") if ok else (503, "text/plain", b"not ready\n")
