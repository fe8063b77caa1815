"""A loopback HTTP server that answers whatever a test tells it to: oversized, malformed, HTML.

Used by the adversarial tests of upstream answers. It counts the requests it received, so a test
can tell a refused answer from a retried one. A `huge` answer is generated as it is sent (the
server never holds it), with or without a Content-Length.
"""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass
class Answer:
    status: int = 200
    content_type: str = "application/json"
    body: bytes = b"{}"
    #: when > 0, a body of this many bytes is streamed instead of `body`
    huge: int = 0
    #: send Content-Length (False: close-delimited body, as a server that does not say)
    declare_length: bool = True
    #: seconds between bytes of `body` (a server dripping its answer)
    drip: float = 0.0
    #: seconds between bytes of the status line and headers (a server dripping those)
    drip_head: float = 0.0
    #: when set, these bytes are sent as the whole answer, then the connection is closed (an
    #: answer that is not HTTP, or one cut in the middle)
    raw: bytes | None = None


class HostileServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.answer = Answer()
        self.requests = 0
        #: bytes of each `huge` answer written before the client stopped reading (appended when
        #: the write ends, `huge_done` then set): a bounded reader leaves most of it unsent
        self.huge_sent: list[int] = []
        self.huge_done = threading.Event()
        #: monotonic times at which each `drip` answer's writing ended (appended when it ends,
        #: `drip_done` then set): a client that gives up closes the connection and ends it
        self.drip_ended: list[float] = []
        self.drip_done = threading.Event()
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def count(self) -> None:
        with self._lock:
            self.requests += 1


class _Handler(http.server.BaseHTTPRequestHandler):
    server: HostileServer
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 - http.server API
        self.server.count()
        self.rfile.read(int(self.headers.get("content-length") or 0))
        answer = self.server.answer
        size = answer.huge or len(answer.body)
        if answer.raw is not None:
            self.wfile.write(answer.raw)
            self.close_connection = True
            return
        if answer.drip_head:
            self._drip_head(answer, size)
            return
        self.send_response(answer.status)
        self.send_header("content-type", answer.content_type)
        if answer.declare_length:
            self.send_header("content-length", str(size))
        else:
            self.send_header("connection", "close")
            self.close_connection = True
        self.end_headers()
        try:
            if answer.drip:
                try:
                    for byte in answer.body:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        time.sleep(answer.drip)
                finally:
                    self.server.drip_ended.append(time.monotonic())
                    self.server.drip_done.set()
                return
            if not answer.huge:
                self.wfile.write(answer.body)
                return
            chunk = b'{"SecretData": "' + b"x" * (64 * 1024)
            sent = 0
            try:
                while sent < size:
                    piece = chunk[: size - sent]
                    self.wfile.write(piece)
                    sent += len(piece)
            finally:
                self.server.huge_sent.append(sent)
                self.server.huge_done.set()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client stopped reading: what a bounded reader does

    do_GET = do_POST  # noqa: N815

    def _drip_head(self, answer: Answer, size: int) -> None:
        head = (f"HTTP/1.1 {answer.status} OK\r\ncontent-type: {answer.content_type}\r\n"
                + "".join(f"x-padding-{n}: {'p' * 40}\r\n" for n in range(20))
                + f"content-length: {size}\r\n\r\n").encode()
        try:
            for byte in head:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(answer.drip_head)
            self.wfile.write(answer.body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client hung up: what a bounded reader does
        finally:
            self.server.drip_ended.append(time.monotonic())
            self.server.drip_done.set()

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def serving(server: http.server.HTTPServer) -> Iterator[None]:
    """Serve `server` from a thread for the block; shut it down afterwards."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@contextmanager
def hostile_server() -> Iterator[HostileServer]:
    server = HostileServer()
    with serving(server):
        yield server
