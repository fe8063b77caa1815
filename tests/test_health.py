"""HTTP /healthz and /readyz as kubelet sees them, wired by build_app over the real socket."""

from __future__ import annotations

import re
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from stevedore import ExtensionManager

from ack_secrets_provider.core import cli
from ack_secrets_provider.core.observability.health import (
    BindError,
    HealthServer,
    HttpEndpoints,
    grpc_health_check,
)
from ack_secrets_provider.core.plugins.backend import ENTRY_POINT_GROUP
from ack_secrets_provider.core.server.app import App, HealthSettings, build_app
from ack_secrets_provider.core.settings import ProviderSettings


def get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    app = build_app(ProviderSettings(), str(tmp_path), grace_period=1.0,
                    health=HealthSettings("127.0.0.1", 0, "/healthz", 2.0))
    try:
        yield app
    finally:
        app.stop()


def test_healthz_and_readyz_follow_the_grpc_server(app: App) -> None:
    assert app.health is not None
    port = app.health.port
    app.start()
    assert get(port, "/healthz") == (200, b"ok\n")
    assert get(port, "/readyz") == (200, b"ok\n")
    assert get(port, "/nope")[0] == 404

    app.server.stop(grace=0)  # the gRPC server goes away, the HTTP server stays
    status, body = get(port, "/healthz")
    assert status == 503 and body == b"not ready\n"
    assert get(port, "/readyz")[0] == 503


def test_healthz_and_readyz_are_503_when_the_socket_file_is_gone(app: App) -> None:
    """operations.md: /healthz is 503 when "the socket is gone" (deleted under a running
    server: the driver could not reach it either), so kubelet restarts the provider, which
    binds it again; /readyz too."""
    assert app.health is not None
    app.start()
    assert get(app.health.port, "/healthz")[0] == 200
    Path(app.server.socket_path).unlink()
    assert get(app.health.port, "/healthz")[0] == 503
    assert get(app.health.port, "/readyz")[0] == 503


def test_readyz_is_503_before_the_socket_is_bound(tmp_path: Path) -> None:
    app = build_app(ProviderSettings(), str(tmp_path / "sock"),
                    health=HealthSettings("127.0.0.1", 0, "/healthz", 1.0))
    assert app.health is not None
    app.health.start()  # the HTTP side only: the provider socket is not bound
    try:
        assert get(app.health.port, "/readyz")[0] == 503
        assert get(app.health.port, "/healthz")[0] == 503
    finally:
        app.close_unstarted()


def test_custom_healthz_path_from_the_flag(tmp_path: Path) -> None:
    app = build_app(ProviderSettings(), str(tmp_path),
                    health=HealthSettings("127.0.0.1", 0, "/live", 2.0))
    app.start()
    try:
        assert app.health is not None
        assert get(app.health.port, "/live")[0] == 200
        assert get(app.health.port, "/healthz")[0] == 404
    finally:
        app.stop()


def test_a_taken_health_port_raises_a_clear_error(tmp_path: Path, taken_port: int) -> None:
    port = taken_port
    with pytest.raises(BindError) as info:
        build_app(ProviderSettings(), str(tmp_path),
                  health=HealthSettings("127.0.0.1", port, "/healthz", 1.0))
    message = str(info.value)
    assert f"127.0.0.1:{port}" in message and "--healthz-port" in message
    assert not (tmp_path / "alibabacloud.sock").exists()  # nothing started half-healthy


def test_http_endpoints_answer_500_when_a_route_fails() -> None:
    def broken() -> tuple[int, str, bytes]:
        raise RuntimeError("boom")

    server = HttpEndpoints("127.0.0.1", 0, {"/x": broken})
    server.start()
    try:
        assert get(server.port, "/x")[0] == 500
    finally:
        server.stop()


def test_port_zero_disables_health_and_metrics() -> None:
    args = cli.build_parser("serve").parse_args(
        ["serve", "--healthz-port", "0", "--metrics-port", "0"])
    assert cli.http_listeners(args, 1.0) == (None, None)
    args = cli.build_parser("serve").parse_args(["serve", "--healthz-port", "8081"])
    health, _metrics = cli.http_listeners(args, 1.0)
    assert health is not None and health.port == 8081


def test_readyz_is_503_when_no_backend_loaded(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """operations.md: /readyz needs "at least one backend plugin loaded" (none installed here);
    /healthz only asks the gRPC health service, which still answers."""
    monkeypatch.setattr(ExtensionManager, "ENTRY_POINT_CACHE", {ENTRY_POINT_GROUP: []})
    app = build_app(ProviderSettings(), str(tmp_path),
                    health=HealthSettings("127.0.0.1", 0, "/healthz", 2.0))
    app.start()
    try:
        assert app.health is not None and not app.backends.names
        assert get(app.health.port, "/readyz")[0] == 503
        assert get(app.health.port, "/healthz")[0] == 200
    finally:
        app.stop()


def test_healthz_is_503_when_the_grpc_check_times_out(tmp_path: Path) -> None:
    """operations.md: /healthz is 503 when the check over the socket times out
    (`--healthz-timeout`): a socket that accepts connections but never answers (a hung server)
    gets its 503 within the timeout, not when kubelet's own probe timeout gives up."""
    path = tmp_path / "hung.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as hung:
        hung.bind(str(path))
        hung.listen(8)  # connections complete in the kernel's backlog; nothing reads them
        server = HealthServer("127.0.0.1", 0, healthz_path="/healthz",
                              live=lambda: grpc_health_check(f"unix:{path}", 0.5),
                              ready=lambda: True)
        server.start()
        try:
            started = time.monotonic()
            assert get(server.port, "/healthz") == (503, b"not ready\n")
            assert time.monotonic() - started < 4.0
        finally:
            server.stop()


def test_the_operations_flag_table_states_the_parsers_defaults() -> None:
    """operations.md, "Ports and flags": giving each flag its documented default changes
    nothing, and `--events` is off unless given."""
    page = (Path(__file__).parents[1] / "docs" / "operations.md").read_text()
    section = page.split("## Ports and flags", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(-[\w-]+)`[^|]* \| ([^|]+) \|", section, re.MULTILINE)
    parser = cli.build_parser("serve")
    defaults = vars(parser.parse_args(["serve"]))
    checked = set()
    for flag, default in rows:
        if default.startswith("`"):
            given = vars(parser.parse_args(["serve", flag, default.strip().strip("`")]))
            assert given == defaults, f"{flag}: the documented default {default} is not the default"
            checked.add(flag)
        else:
            assert (flag, default.split()[0], defaults["events"]) == ("--events", "off", False)
    assert len(checked) == 8
