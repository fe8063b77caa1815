"""The emulator: loopback HTTP(S) listeners that route signed calls to the service parts.

One `Emulator` owns the shared state (credentials, policies, faults, counters) and up to two
listeners on 127.0.0.1: plain HTTP and, optionally, HTTPS with a generated test CA chain. Both
serve the same API and admin routes. Requests are:

* RPC calls: `POST /` (or `GET /` for STS calls of alibabacloud-credentials) with the action and
  version in `x-acs-action`/`x-acs-version` headers or `Action`/`Version` query parameters,
  routed by (version, action) to a part after the signature is verified;
* plain HTTP paths claimed by a part (`http_paths`, for instance metadata), not signed;
* `/_admin/...` (see `admin.py`), accepted from loopback clients only.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import socket
import ssl
import threading
import time
from collections.abc import Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from ack_secrets_provider.core.emulator import errors
from ack_secrets_provider.core.emulator.admin import AdminApi
from ack_secrets_provider.core.emulator.api import (
    ApiError,
    Call,
    EmulatorContext,
    EmulatorPart,
    Reply,
)
from ack_secrets_provider.core.emulator.counters import Counters
from ack_secrets_provider.core.emulator.credentials import CredentialStore, PolicyStore
from ack_secrets_provider.core.emulator.faults import FaultInjector
from ack_secrets_provider.core.emulator.registry import discover_parts, installed_services
from ack_secrets_provider.core.emulator.seed import FRAMEWORK_KEYS, load_seed
from ack_secrets_provider.core.emulator.signature import (
    SignatureVerifier,
    SignedRequest,
    require_signature,
)
from ack_secrets_provider.core.emulator.tls import TlsFiles, generate_chain

log = logging.getLogger(__name__)
MAX_BODY = 1 << 20


def parse_listen(value: str) -> tuple[str, int]:
    """`127.0.0.1:PORT` (or `localhost:PORT`) → (host, port); anything non-loopback is refused."""
    host, sep, port_text = value.rpartition(":")
    if not sep or not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError(f"listen address {value!r} must look like 127.0.0.1:PORT "
                         "(PORT 0 picks a free port)")
    if host == "localhost":
        host = "127.0.0.1"
    try:
        loopback = ipaddress.IPv4Address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"listen address {value!r}: the emulator only binds IPv4 loopback "
                         "(127.0.0.0/8); use for example 127.0.0.1:0")
    return host, int(port_text)


class Emulator:
    """All parts behind one set of listeners. Thread-safe; `start()` then `stop()`."""

    def __init__(
        self,
        seed: str | Path | Mapping[str, Any] | None = None,
        *,
        parts: Sequence[type[EmulatorPart]] | None = None,
        now: Any = time.time,
    ) -> None:
        self.credentials = CredentialStore(now)
        self.policies = PolicyStore()
        self.context = EmulatorContext(self.credentials, self.policies, now)
        self.verifier = SignatureVerifier(self.credentials, now)
        self.faults = FaultInjector()
        self.counters = Counters()
        classes = discover_parts() if parts is None else list(parts)
        self.parts: dict[str, EmulatorPart] = {}
        self._rpc: dict[tuple[str, str], EmulatorPart] = {}
        self._paths: list[tuple[str, EmulatorPart]] = []
        for cls in classes:
            part = cls(self.context)
            if part.service in self.parts:
                raise ValueError(f"two emulator parts claim service {part.service!r}")
            self.parts[part.service] = part
            for action in part.actions | part.anonymous_actions:
                self._rpc[(part.api_version or "", action)] = part
            self._paths += [(prefix, part) for prefix in part.http_paths]
        self._paths.sort(key=lambda item: -len(item[0]))
        self._load(load_seed(seed))
        self.admin = AdminApi(
            parts=self.parts, counters=self.counters, faults=self.faults,
            credentials=self.credentials, policies=self.policies,
            urls=lambda: {"http_url": self.http_url, "https_url": self.https_url},
        )
        self._servers: list[_Server] = []
        self._threads: list[threading.Thread] = []
        self.tls: TlsFiles | None = None
        self.http_address: str | None = None
        self.https_address: str | None = None

    def _load(self, seed: Mapping[str, Any]) -> None:
        installed = set(installed_services())
        unknown = sorted(set(seed) - set(FRAMEWORK_KEYS) - installed - set(self.parts))
        if unknown:
            raise ValueError(f"emulator seed: unknown top-level key(s) {', '.join(unknown)}; "
                             f"expected {', '.join(FRAMEWORK_KEYS + tuple(self.parts))}")
        self.credentials.load_seed(seed.get("access_keys") or [])
        self.policies.load_seed(seed.get("policies") or [])
        for service, part in self.parts.items():
            section = seed.get(service) or {}
            if not isinstance(section, Mapping):
                raise ValueError(f"emulator seed: section {service} must be a mapping")
            part.load_seed(section)
        for service in set(seed) & installed - set(self.parts):
            log.warning("emulator seed: section %s ignored, no %s part is loaded",
                        service, service)

    # --- lifecycle ----------------------------------------------------------------------------
    def start(self, listen: str = "127.0.0.1:0", *, tls_listen: str | None = None,
              tls_dir: str | Path | None = None) -> None:
        """Bind the listeners (HTTPS only when `tls_listen` is given) and serve in threads."""
        http = _Server(parse_listen(listen), self, None)
        self._servers.append(http)
        self.http_address = http.address
        if tls_listen is not None:
            if tls_dir is None:
                raise ValueError("an HTTPS listener needs tls_dir for its generated CA chain")
            self.tls = generate_chain(tls_dir)
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(self.tls.server_chain, self.tls.server_key)
            https = _Server(parse_listen(tls_listen), self, context)
            self._servers.append(https)
            self.https_address = https.address
        for server in self._servers:
            thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                                      name=f"emulator-{server.server_address[1]}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.close_all()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._servers.clear()
        self._threads.clear()

    @property
    def http_url(self) -> str | None:
        return f"http://{self.http_address}" if self.http_address else None

    @property
    def https_url(self) -> str | None:
        return f"https://{self.https_address}" if self.https_address else None

    # --- request handling ---------------------------------------------------------------------
    def route(self, version: str, action: str) -> EmulatorPart:
        part = self._rpc.get((version, action))
        if part is None:
            raise errors.action_not_found(action, version)
        return part

    def route_path(self, path: str) -> EmulatorPart | None:
        for prefix, part in self._paths:
            if path.startswith(prefix):
                return part
        return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], emulator: Emulator,
                 ssl_context: ssl.SSLContext | None) -> None:
        self.emulator = emulator
        self.ssl_context = ssl_context
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, _Handler)

    @property
    def address(self) -> str:
        host, port = self.server_address[:2]
        return f"{host!s}:{port}" if isinstance(host, str) else f"{host.decode()}:{port}"

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = super().get_request()
        if self.ssl_context is not None:
            # The handshake runs in the handler thread, so a slow client cannot stall accept().
            sock = self.ssl_context.wrap_socket(sock, server_side=True,
                                                do_handshake_on_connect=False)
        with self._open_lock:
            self._open.add(sock)
        return sock, addr

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_all(self) -> None:
        """Close kept-alive client connections so stop() leaves nothing behind."""
        with self._open_lock:
            open_sockets = list(self._open)
            self._open.clear()
        for sock in open_sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("emulator: connection from %s ended with an error", client_address,
                  exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "AlibabaCloudEmulator/1.0"
    sys_version = ""
    timeout = 30
    server: _Server

    def setup(self) -> None:
        self.request.settimeout(10)
        # Headers and body are written separately: without NODELAY, Nagle + delayed ACK add
        # ~40 ms to every keep-alive response and the emulator would dominate every benchmark.
        with contextlib.suppress(OSError):
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if isinstance(self.request, ssl.SSLSocket):
            self.request.do_handshake()
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        # Never the query string: v1 requests carry Signature and SecurityToken there.
        log.debug("emulator %s %s", self.command, urlsplit(self.path).path)

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    # --- plumbing -----------------------------------------------------------------------------
    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0 or length > MAX_BODY:
            raise ApiError("InvalidParameter", "Request body is too large.", 400)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes, headers: Mapping[str, str],
              content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _send_json(self, status: int, payload: Any, headers: Mapping[str, str] | None = None
                   ) -> None:
        self._send(status, json.dumps(payload).encode(), headers or {},
                   "application/json;charset=utf-8")

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _dispatch(self) -> None:
        emulator = self.server.emulator
        url = urlsplit(self.path)
        host = self.headers.get("Host", "")
        try:
            body = self._read_body()
        except (ValueError, ApiError):
            self._send_json(400, {"Code": "InvalidParameter", "Message": "bad Content-Length"})
            return
        if url.path.startswith("/_admin/") or url.path == "/_admin":
            if not ipaddress.ip_address(self.client_address[0]).is_loopback:
                self._send_json(403, {"error": "the admin API answers loopback clients only"})
                return
            status, payload = emulator.admin.handle(self.command, url.path, body)
            self._send_json(status, payload)
            return
        query = parse_qsl(url.query, keep_blank_values=True)
        params = dict(query)
        if (self.headers.get("Content-Type") or "").startswith(
                "application/x-www-form-urlencoded") and body:
            params.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        action = self.headers.get("x-acs-action") or params.get("Action") or ""
        version = self.headers.get("x-acs-version") or params.get("Version") or ""
        call = Call(service="", action=action, version=version, method=self.command,
                    path=url.path or "/", params=params,
                    headers={k.lower(): v for k, v in self.headers.items()}, body=body,
                    host=host, request_id=EmulatorContext.new_request_id())
        part: EmulatorPart | None = None
        outcome: Reply | ApiError
        try:
            if action:
                part = emulator.route(version, action)
            else:
                part = emulator.route_path(call.path)
                if part is None:
                    raise errors.action_not_found(action, version)
            call.service = part.service
            if not self._apply_faults(emulator, part, call):
                return
            if action:
                signed = SignedRequest(self.command, url.path or "/", query,
                                       self._header_lists(), body)
                anonymous = action in part.anonymous_actions
                if not anonymous or emulator.verifier.is_signed(signed):
                    call.principal, call.signature_method = require_signature(
                        emulator.verifier, signed, params)
                outcome = part.handle(call)
            else:
                outcome = part.handle_http(call)
        except ApiError as error:
            outcome = error
        except Exception:  # a part bug must answer 500, not kill the connection silently
            log.exception("emulator part %s failed on %s", call.service, action or call.path)
            outcome = errors.internal_failure()
        # Count before answering: a client that reads the counters right after its call must
        # see it.
        emulator.counters.record(
            service=call.service or "unrouted", action=action or call.path,
            result=outcome.code if isinstance(outcome, ApiError) else "OK",
            resources=call.resources,
            principal=call.principal.name if call.principal else None)
        if isinstance(outcome, ApiError):
            self._error(call, part, outcome)
        else:
            self._reply(call, outcome)

    def _header_lists(self) -> dict[str, list[str]]:
        lists: dict[str, list[str]] = {}
        for name, value in self.headers.items():
            lists.setdefault(name.lower(), []).append(value)
        return lists

    def _apply_faults(self, emulator: Emulator, part: EmulatorPart, call: Call) -> bool:
        decision = emulator.faults.decide(part.service)
        if decision.delay_s > 0:
            time.sleep(decision.delay_s)
        if decision.action == "drop":
            emulator.counters.record(service=part.service, action=call.action or call.path,
                                     result="Dropped")
            self._drop()
            return False
        if decision.action == "throttle":
            raise errors.throttled(part.throttling_code, part.throttling_status,
                                   decision.retry_after_ms)
        if decision.action == "outage":
            raise errors.service_unavailable()
        if decision.action == "error":
            raise (errors.service_unavailable() if decision.error_status == 503
                   else ApiError("InternalFailure", "The request processing has failed due to "
                                 "some unknown error.", decision.error_status))
        return True

    def _reply(self, call: Call, reply: Reply) -> None:
        headers = {"x-acs-request-id": call.request_id, **reply.headers}
        if isinstance(reply.body, Mapping):
            payload = dict(reply.body)
            payload.setdefault("RequestId", call.request_id)
            self._send(reply.status, json.dumps(payload).encode(), headers,
                       reply.content_type or "application/json;charset=utf-8")
        else:
            data = reply.body.encode() if isinstance(reply.body, str) else reply.body
            self._send(reply.status, data, headers, reply.content_type or "text/plain")

    def _error(self, call: Call, part: EmulatorPart | None, error: ApiError) -> None:
        body = errors.error_body(error, request_id=call.request_id, host=call.host,
                                 product=part.product if part else "")
        self._send(error.status, body, {"x-acs-request-id": call.request_id, **error.headers},
                   "application/json;charset=utf-8")
