"""The suite's own guard must refuse non-loopback connections (and allow loopback)."""

import socket

import pytest


def test_connect_to_metadata_address_fails_loudly() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock, pytest.raises(
        RuntimeError, match="non-loopback"
    ):
        sock.connect(("100.100.100.200", 80))


def test_resolving_a_cloud_host_fails_loudly() -> None:
    with pytest.raises(RuntimeError, match="non-loopback"):
        socket.getaddrinfo("kms-vpc.cn-hangzhou.aliyuncs.com", 443)


def test_loopback_is_allowed() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        server.settimeout(5)
        with socket.create_connection(server.getsockname(), timeout=5) as client:
            accepted, _ = server.accept()
            with accepted:
                client.sendall(b"ping")
                assert accepted.recv(4) == b"ping"  # a real connection, not just no error
