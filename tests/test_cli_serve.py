"""`ack-secrets-provider` as the existing chart runs it: flags only, Go-style, then SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ack_secrets_provider.core.cli import _normalize_go_flags, build_parser, build_settings
from ack_secrets_provider.core.durations import parse_duration
from ack_secrets_provider.core.server.driver_client import ProviderClient


def _wait_for(path: Path, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"provider exited early: {err.decode()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("socket did not appear")
        time.sleep(0.05)


@pytest.mark.parametrize("style", ["--provider-volume={dir}", "-provider-volume={dir}"])
def test_flag_only_invocation_serves_and_stops_cleanly_on_sigterm(
    tmp_path: Path, style: str
) -> None:
    args = [sys.executable, "-m", "ack_secrets_provider.core.cli", style.format(dir=tmp_path),
            "--healthz-port=0", "--metrics-port=0", "-v=5", "--region=cn-hangzhou"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ})
    try:
        sock = tmp_path / "alibabacloud.sock"
        _wait_for(sock, proc)
        client = ProviderClient(sock)
        assert client.version().version == "v1alpha1"
        client.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        assert not sock.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_go_style_flags_are_normalised() -> None:
    assert _normalize_go_flags(["-provider-volume=/p", "-v=5", "-v", "3", "--region=x"]) == [
        "--provider-volume=/p", "-v=5", "-v", "3", "--region=x"
    ]
    args = build_parser().parse_args(["serve", *_normalize_go_flags(["-v=5"])])
    assert args.verbosity == 5


def test_settings_from_flags() -> None:
    args = build_parser().parse_args([
        "serve", "--region", "cn-shanghai", "--cache-ttl", "1m30s",
        "--provider-identity-namespaces", "a, b", "--endpoint-override",
        "kms=http://127.0.0.1:9", "--serial-fetch", "--max-concurrent-kms-secret-pulls", "25",
    ])
    settings = build_settings(args, {"ACK_SECRETS_PROVIDER_ENDPOINT_OVERRIDES":
                                     "oos=http://127.0.0.1:10"})
    assert settings.region == "cn-shanghai"
    assert settings.cache_ttl == 90
    assert settings.provider_identity_namespaces == frozenset({"a", "b"})
    assert settings.endpoint_overrides.resolve("kms", "kms-vpc.x.aliyuncs.com").url == (
        "http://127.0.0.1:9")
    assert settings.endpoint_overrides.resolve("oos", "oos-vpc.x.aliyuncs.com").url == (
        "http://127.0.0.1:10")
    assert settings.fetch_concurrency == 1
    assert settings.rate_limits["kms"] == 25  # the KMS backend's own flag
    assert settings.rate_limits["oos"] == 10  # its default


@pytest.mark.parametrize(("text", "seconds"), [
    ("5s", 5), ("1m30s", 90), ("250ms", 0.25), ("2h", 7200), ("0", 0), ("12.5", 12.5),
])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5x", "s", "-1", "1m-3s", "five"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_a_live_socket_is_never_stolen(tmp_path: Path) -> None:
    from ack_secrets_provider.core.server.driver_client import running_provider
    from ack_secrets_provider.core.settings import ProviderSettings

    with running_provider(ProviderSettings(), tmp_path), pytest.raises(
        RuntimeError, match="already serving"
    ), running_provider(ProviderSettings(), tmp_path):
        pass


def test_a_taken_health_port_is_a_clear_start_up_error(tmp_path: Path, taken_port: int) -> None:
    port = taken_port
    result = subprocess.run(
        [sys.executable, "-m", "ack_secrets_provider.core.cli",
         f"--provider-volume={tmp_path}", "--healthz-addr=127.0.0.1",
         f"--healthz-port={port}", "--metrics-port=0", "--region=cn-hangzhou"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 1
    assert "cannot start" in result.stderr and str(port) in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "alibabacloud.sock").exists()


@pytest.mark.parametrize("flag", ["--grace-period=soon", "--healthz-timeout=5x",
                                  "--cache-ttl=forever", "--endpoint-override=kms"])
def test_bad_flag_values_are_one_clear_line(tmp_path: Path, flag: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ack_secrets_provider.core.cli", f"--provider-volume={tmp_path}",
         "--healthz-port=0", "--metrics-port=0", flag],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("ack-secrets-provider: ")
