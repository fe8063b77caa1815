"""Small HTTP servers for kubelet probes and Prometheus scrapes.

`/healthz` (path configurable) calls the gRPC health service over the provider socket, exactly as
a client on the node (the driver) would see it; `/readyz` answers 200 once the socket is bound and
plugins are loaded. The same server class serves `/metrics` on the metrics port (and on the
health port, so one port can do both).

A port that cannot be bound raises `BindError` at construction, before anything starts: the
existing provider ignored this and ran without health endpoints, so kubelet killed it in a loop
with no hint why.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

log = logging.getLogger(__name__)

#: a route answers (HTTP status, content type, body)
Route = Callable[[], tuple[int, str, bytes]]


class BindError(RuntimeError):
    """An HTTP server could not bind its address (names the address, the cause and the flag)."""


def grpc_health_check(target: str, timeout: float) -> bool:
    """True when the gRPC health service at `target` answers SERVING within `timeout`."""
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


class HttpEndpoints:
    """A threaded HTTP server with fixed GET routes, bound at construction."""

    def __init__(self, address: str, port: int, routes: dict[str, Route], *,
                 what: str = "HTTP endpoints", flag: str | None = None) -> None:
        self.what = what
        self.routes = dict(routes)
        table = self.routes

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server API
                route = table.get(self.path.split("?", 1)[0])
                if route is None:
                    code, ctype, body = 404, "text/plain; charset=utf-8", b"not found\n"
                else:
                    try:
                        code, ctype, body = route()
                    except Exception:  # a probe must answer, never hang up
                        log.exception("%s route %s failed", what, self.path)
                        code, ctype, body = 500, "text/plain; charset=utf-8", b"error\n"
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                log.debug(f"{what}: " + format, *args)

        try:
            self._httpd = ThreadingHTTPServer((address, port), Handler)
        except OSError as exc:
            hint = f" or choose another port with {flag}" if flag else ""
            raise BindError(
                f"cannot serve {what} on {address}:{port}: {exc.strerror or exc}; another "
                f"process (often a second provider on this node) uses the port: stop it{hint}"
            ) from exc
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> str:
        return str(self._httpd.server_address[0])

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True,
                                            name=self.what.replace(" ", "-"))
            self._thread.start()
            log.info("serving %s on %s:%d (%s)", self.what, self.address, self.port,
                     ", ".join(sorted(self.routes)))

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(5.0)
            self._thread = None
        self._httpd.server_close()


class HealthServer(HttpEndpoints):
    """`<healthz_path>` (liveness) and `/readyz` (readiness), plus optional extra routes."""

    def __init__(
        self,
        address: str,
        port: int,
        *,
        healthz_path: str,
        live: Callable[[], bool],
        ready: Callable[[], bool],
        extra_routes: dict[str, Route] | None = None,
    ) -> None:
        routes: dict[str, Route] = {
            healthz_path: lambda: _status(live()),
            "/readyz": lambda: _status(ready()),
            **(extra_routes or {}),
        }
        super().__init__(address, port, routes, what="health endpoints", flag="--healthz-port")


def _status(ok: bool) -> tuple[int, str, bytes]:
    return (200, "text/plain; charset=utf-8", b"ok\n") if ok else (
        503, "text/plain; charset=utf-8", b"not ready\n")
