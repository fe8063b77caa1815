"""Connections to the provider socket that stop answering, never greet, or never call are closed
(issue 10: "the gRPC server keeps half-open connections indefinitely").

The peer here speaks raw HTTP/2 over the unix socket, so it can do what a real client never
does: acknowledge the server's settings and then ignore its keepalive pings.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hostile_provider import ProviderProcess, provider_process

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
SETTINGS, PING, GOAWAY = 4, 6, 7
ACK = 1


def frame(kind: int, flags: int = 0, payload: bytes = b"") -> bytes:
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + bytes(4) + payload


def watch(path: Path, *, greet: bool, answer_pings: bool, seconds: float,
          until_goaway: bool = False) -> tuple[float | None, list[int]]:
    """Connect and behave as told for up to `seconds`: (seconds until the provider closed the
    connection, or None if it stayed open; the frame types it sent)."""
    kinds: list[int] = []
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as peer:
        peer.connect(str(path))
        peer.settimeout(0.2)
        if greet:
            peer.sendall(PREFACE + frame(SETTINGS))
        started, buffer = time.monotonic(), b""
        while time.monotonic() - started < seconds:
            try:
                data = peer.recv(65536)
            except TimeoutError:
                continue
            except ConnectionError:
                data = b""
            if not data:
                return time.monotonic() - started, kinds
            buffer += data
            while len(buffer) >= 9 and len(buffer) >= 9 + int.from_bytes(buffer[:3], "big"):
                length, kind, flags = int.from_bytes(buffer[:3], "big"), buffer[3], buffer[4]
                payload, buffer = buffer[9:9 + length], buffer[9 + length:]
                kinds.append(kind)
                if kind == SETTINGS and not flags & ACK and greet:
                    peer.sendall(frame(SETTINGS, ACK))
                if kind == PING and not flags & ACK and answer_pings:
                    peer.sendall(frame(PING, ACK, payload))
                if kind == GOAWAY and until_goaway:
                    return time.monotonic() - started, kinds
    return None, kinds


@pytest.fixture(scope="module")
def keepalive_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProviderProcess]:
    with provider_process(tmp_path_factory.mktemp("keepalive"), "--grpc-keepalive-time", "1s",
                          "--grpc-keepalive-timeout", "1s") as provider:
        yield provider


def test_a_peer_that_ignores_keepalive_pings_is_disconnected(
    keepalive_target: ProviderProcess,
) -> None:
    closed, kinds = watch(keepalive_target.socket_path, greet=True, answer_pings=False,
                          seconds=15)
    assert PING in kinds
    assert closed is not None and closed < 8, (closed, kinds)


def test_a_peer_that_answers_its_pings_stays_connected(keepalive_target: ProviderProcess) -> None:
    closed, kinds = watch(keepalive_target.socket_path, greet=True, answer_pings=True, seconds=4)
    assert closed is None and kinds.count(PING) >= 2, (closed, kinds)


def test_a_peer_that_never_greets_is_disconnected(keepalive_target: ProviderProcess) -> None:
    closed, _ = watch(keepalive_target.socket_path, greet=False, answer_pings=False, seconds=15)
    assert closed is not None and closed < 8, closed


def test_a_connection_without_calls_is_closed_after_the_idle_limit(tmp_path: Path) -> None:
    with provider_process(tmp_path, "--grpc-max-connection-idle", "1s") as provider:
        closed, kinds = watch(provider.socket_path, greet=True, answer_pings=True, seconds=15,
                              until_goaway=True)
        assert closed is not None and closed < 8 and kinds[-1] == GOAWAY, (closed, kinds)
        assert provider.client.version().version == "v1alpha1"  # a client simply reconnects
