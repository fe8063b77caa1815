"""`ack-secrets-provider` as the existing chart runs it: flags only, Go-style, then SIGTERM."""

from __future__ import annotations

import argparse
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


def test_the_serve_defaults_the_migration_page_promises() -> None:
    """docs/migration.md: the official provider's flags keep their defaults (Socket and flags
    row), objects are fetched 10 at a time, SIGTERM grants 30 s, and the value cache is on
    for 60 s on the command line as in the chart (defect 9)."""
    args = build_parser().parse_args(["serve"])
    settings = build_settings(args, {})
    assert args.provider_volume == "/var/run/secrets-store-csi-providers"
    assert (args.healthz_port, args.healthz_path, args.healthz_timeout) == (8989, "/healthz", 5)
    assert settings.rate_limits["kms"] == settings.rate_limits["oos"] == 10
    assert settings.fetch_concurrency == 10
    assert args.grace_period == 30
    assert settings.cache_ttl == 60
    assert settings.max_response_bytes == 4 * 1024 * 1024  # the driver's maxCallRecvMsgSize


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


@pytest.mark.parametrize(("flag", "message"), [
    ("--region=cn_hangzhou", "argument --region: 'cn_hangzhou' is not a region id; use the form "
                             "cn-hangzhou"),
    ("--grace-period=soon", "argument --grace-period: duration 'soon'"),
    ("--healthz-timeout=5x", "argument --healthz-timeout: duration '5x'"),
    ("--cache-ttl=forever", "argument --cache-ttl: duration 'forever'"),
    ("--cache-ttl=-1s", "argument --cache-ttl: duration '-1s'"),
    ("--endpoint-override=kms", "argument --endpoint-override: endpoint override 'kms'"),
    ("--allowed-endpoint-suffixes=https://x", "argument --allowed-endpoint-suffixes: "
                                              "allowed endpoint suffix 'https://x' must be a "
                                              "domain such as aliyuncs.com"),
    ("--allowed-endpoint-suffixes= , ", "argument --allowed-endpoint-suffixes: no domain given; "
                                        "give at least one (default aliyuncs.com), or *"),
    ("--metrics-port=70000", "argument --metrics-port: '70000' is not a TCP port"),
    ("--healthz-port=http", "argument --healthz-port: 'http' is not a TCP port"),
    ("--healthz-addr=everywhere", "argument --healthz-addr: 'everywhere' is not an IP address"),
    # the probe asks for /healthz: a path without its slash would fail liveness forever
    ("--healthz-path=healthz", "argument --healthz-path: 'healthz' is not an HTTP path; write "
                               "it with its leading slash"),
    ("--healthz-path=/healthz?full=1", "argument --healthz-path: '/healthz?full=1' is not an "
                                       "HTTP path"),
    ("-v=loud", "argument -v/--v: 'loud' is not a whole number of 0 or more"),
    ("--fetch-concurrency=0", "argument --fetch-concurrency: '0' is not a whole number of 1"),
    ("--endpoint-concurrency=-2", "argument --endpoint-concurrency: '-2' is not a whole number"),
    ("--cache-max-bytes=64MB", "argument --cache-max-bytes: '64MB' is not a whole number"),
    ("--sts-endpoint=https://sts.aliyuncs.com", "argument --sts-endpoint: "
                                               "'https://sts.aliyuncs.com' is not a host name"),
    ("--kube-api-url=10.0.0.1:6443", "argument --kube-api-url: '10.0.0.1:6443' is not an "
                                     "http(s) URL"),
    ("--provider-identity-namespaces=kube-system,Team_A",
     "argument --provider-identity-namespaces: 'Team_A' is not a namespace name"),
    ("--max-objects=0", "argument --max-objects: '0' is not a whole number of 1 or more"),
    # a backend's rate flag: a negative rate meant "no limit", infinity failed every mount
    ("--max-concurrent-kms-secret-pulls=-1", "argument --max-concurrent-kms-secret-pulls: '-1' "
                                             "is not a rate; use calls per second"),
    ("--max-concurrent-kms-secret-pulls=inf", "argument --max-concurrent-kms-secret-pulls: "
                                              "'inf' is not a rate"),
    ("--grpc-keepalive-time=0s", "argument --grpc-keepalive-time: '0s' must be longer than 0s"),
    # files: checked when serve starts (parsing stays a pure function of the text)
    ("--sts-ca-file=/no/such/sts.pem", "argument --sts-ca-file: '/no/such/sts.pem' is not a "
                                       "readable file"),
    # a backend's own file and directory options (`Option.kind`), as the KMS CA flags
    ("--kms-ca-file=/no/such/kms.pem", "argument --kms-ca-file: '/no/such/kms.pem' is not a "
                                       "readable file"),
    ("--kms-ca-file=/", "argument --kms-ca-file: '/' is not a readable file"),
    ("--kms-ca-dir=/no/such/cas", "argument --kms-ca-dir: '/no/such/cas' is not a readable "
                                  "directory"),
    ("--kms-ca-dir=/proc/version", "argument --kms-ca-dir: '/proc/version' is not a readable "
                                   "directory"),
    # and what needs the installed backends: a service name in an override
    ("--endpoint-override=kmss=http://127.0.0.1:9",
     "argument --endpoint-override: endpoint override 'kmss=http://127.0.0.1:9': 'kmss' is "
     "neither a service (kms, metadata, oos, sts, testmem)"),
])
def test_bad_flag_values_stop_serve_at_start_up_naming_the_flag(
        tmp_path: Path, flag: str, message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ack_secrets_provider.core.cli", f"--provider-volume={tmp_path}",
         "--healthz-port=0", "--metrics-port=0", flag],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    first = result.stderr.splitlines()[0]  # one line, not the forty-flag usage
    assert first.startswith("ack-secrets-provider serve: error: " + message), result.stderr
    assert not (tmp_path / "alibabacloud.sock").exists()  # it never started


#: serve's flags whose value argparse takes as text, and where each is checked instead
CHECKED_LATER = {
    "--provider-volume": "a directory serve creates",
    "--endpoint-override": "build_settings, against the installed backends' services",
    "--default-object-type": "build_app, against the installed backends",
    "--sts-ca-file": "flag_values.unreadable_file when serve starts",
    # read when used: outside a cluster, or without RRSA, their default paths do not exist
    "--kube-token-file": "the Kubernetes client", "--kube-ca-file": "the Kubernetes client",
    "--rrsa-token-file": "the provider RRSA credential plugin",
}


def test_every_serve_flag_value_is_checked() -> None:
    """docs/cli.md: 'Every value is checked when serve starts'. A new flag without a type (or
    choices) fails here until it gets one or says above where it is checked. A backend's own
    options (`Backend.options`) are its text to check, or paths serve checks (`Option.kind`)."""
    parser = build_parser("serve")
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    unchecked = [action.option_strings[-1] for action in sub.choices["serve"]._actions
                 if action.option_strings and action.nargs != 0 and action.type is None
                 and not action.choices and not action.dest.startswith("option:")]
    assert sorted(unchecked) == sorted(CHECKED_LATER)


def test_a_bad_override_variable_is_named(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ack_secrets_provider.core.cli", f"--provider-volume={tmp_path}",
         "--healthz-port=0", "--metrics-port=0"],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "ACK_SECRETS_PROVIDER_ENDPOINT_OVERRIDES": "kms"},
    )
    assert result.returncode == 2
    assert result.stderr.startswith("ack-secrets-provider serve: error: environment variable "
                                    "ACK_SECRETS_PROVIDER_ENDPOINT_OVERRIDES: endpoint override")


def _help(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ack_secrets_provider.core.cli", *argv],
                          capture_output=True, text=True, timeout=60)


def test_the_bare_command_prints_help_instead_of_serving(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "ack_secrets_provider.core.cli"],
                            capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout.startswith("usage: ack-secrets-provider")
    assert "serve" in result.stdout and "mount" in result.stdout
    assert result.stderr == ""  # no log line: nothing started


def test_serve_help_shows_defaults_and_the_three_names() -> None:
    text = " ".join(_help("serve", "--help").stdout.split())  # argparse wraps lines
    assert "(default: /var/run/secrets-store-csi-providers)" in text
    assert "(default: 60s)" in text and "(default: 8989)" in text
    assert "(default: None)" not in text and "(default: False)" not in text
    assert "5+ trace) (default: 0)" in text  # 0 is a default too, though it equals False
    # a backend's flags read like the others (not the internal dest rate_limit:kms)
    assert "--max-concurrent-kms-secret-pulls PER_SECOND" in text
    assert "--kms-ca-file KMS_CA_FILE" in text
    assert "RATE_LIMIT:" not in text and "OPTION:" not in text
    for name in ("`ack-secrets-provider` is this command",
                 "`csi-secrets-store-provider-alibabacloud` is the Python distribution",
                 "`secrets-store-csi-driver-provider-alibabacloud` is the runtime name"):
        assert name in text
    assert "`ack-secrets-provider` is this command" in " ".join(_help("--help").stdout.split())


@pytest.mark.parametrize("command", ["mount", "lint", "version", "plugins", "demo", "serve",
                                     "emulator"])
def test_every_flag_and_command_has_help(command: str) -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    chosen = sub.choices[command]
    assert chosen.description, f"{command} --help has no description"
    undocumented = [action.option_strings for action in chosen._actions
                    if action.option_strings and not action.help]
    assert not undocumented, f"{command}: flags without help: {undocumented}"


def test_serve_does_not_import_the_other_commands() -> None:
    """Their modules (and what they import) would only add to serve's memory; each command's
    own parser still imports its module (test_every_flag_and_command_has_help)."""
    script = ("import sys; from ack_secrets_provider.core.cli import COMMANDS, build_parser; "
              "build_parser('serve'); "
              "print([n for n, _ in COMMANDS "
              "if f'ack_secrets_provider.core.commands.{n}' in sys.modules])")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
    assert _help("lint", "--help").stdout.startswith("usage: ack-secrets-provider lint")
