"""Test-suite guards. This file runs before any test module imports the Alibaba SDKs.

1. The environment is scrubbed before anything imports alibabacloud_credentials (it snapshots
   the environment at import time): no proxies, no SDK debug output, no ALIBABA_CLOUD_* keys,
   no metadata service, HOME in a temporary directory.
2. An audit hook makes every connection to a non-loopback address fail loudly, so no test can
   reach *.aliyuncs.com or the metadata address 100.100.100.200 (tests/loopback_guard.py, which
   also guards the processes a test starts with its `child_environment`).
3. The same hook refuses to open anything in a `shared/` folder beside the repository: the suite
   passes in a plain clone, so the facts a test needs live in the repository (tests/data/).
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile

from loopback_guard import NetworkGuardError, refusal

for _name in list(os.environ):
    if _name.startswith(("ALIBABA_CLOUD_", "ALICLOUD_")) or _name in {
        "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy",
        "DEBUG", "ACCESS_KEY_ID", "SECRET_ACCESS_KEY", "ACK_SECRETS_PROVIDER_ENDPOINT_OVERRIDES",
    }:
        del os.environ[_name]
os.environ["ALIBABA_CLOUD_ECS_METADATA_DISABLED"] = "true"
os.environ["ALIBABA_CLOUD_CLI_PROFILE_DISABLED"] = "true"
os.environ["NO_PROXY"] = "*"
_HOME = tempfile.mkdtemp(prefix="ack-test-home-")
os.environ["HOME"] = _HOME
os.environ["XDG_CACHE_HOME"] = os.path.join(_HOME, ".cache")
os.environ["XDG_CONFIG_HOME"] = os.path.join(_HOME, ".config")


def _audit(event: str, args: tuple[object, ...]) -> None:
    reason = refusal(event, args)
    if reason is not None:
        raise NetworkGuardError(f"test {reason}")


sys.addaudithook(_audit)

# Hypothesis: a deterministic profile for CI, a larger one for local runs.
from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile(
    "ci", derandomize=True, deadline=None, database=None, max_examples=150,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", deadline=None, max_examples=300)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


# --- emulator fixtures ---
# The loopback Alibaba Cloud emulator (core/emulator) seeded with `testing.default_seed()` (its
# keys: testing.ACCESS_KEY_ID / ACCESS_KEY_SECRET, and LIMITED_* for a principal whose policy
# allows only app/* and app-*). Build real SDK clients from `emulator.address` (plain HTTP) or
# `emulator_tls.tls_address` + `emulator_tls.root_ca`.
import pytest  # noqa: E402


@pytest.fixture
def emulator():  # type: ignore[no-untyped-def]
    """A running in-process emulator (plain HTTP) with the default seed; stopped afterwards."""
    from ack_secrets_provider.core.emulator.testing import default_seed, running_emulator

    with running_emulator(default_seed()) as handle:
        yield handle


@pytest.fixture
def emulator_tls(tmp_path):  # type: ignore[no-untyped-def]
    """Like `emulator`, plus an HTTPS listener with a root -> intermediate -> server chain."""
    from ack_secrets_provider.core.emulator.testing import default_seed, running_emulator

    with running_emulator(default_seed(), tls=True, tls_dir=tmp_path / "emulator-ca") as handle:
        yield handle


@pytest.fixture
def emu(emulator):  # type: ignore[no-untyped-def]
    """The requesting module's `emulator` with its faults cleared and counters zeroed.

    For modules that override `emulator` with a module-scoped one (their own seed, started
    once): every test still starts from no faults and zero counters.
    """
    emulator.clear_faults()
    emulator.reset_counters()
    return emulator


@pytest.fixture
def taken_port():  # type: ignore[no-untyped-def]
    """A 127.0.0.1 port that a listening socket holds for the whole test (to make a bind fail)."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        yield taken.getsockname()[1]


@pytest.fixture
def served_provider(tmp_path):  # type: ignore[no-untyped-def]
    """A provider wired by `build_app` as `serve` wires it, with the test backend `testmem`
    (tests/plugins/ack-test-backend), its own metrics registry, and its health and metrics
    servers on 127.0.0.1 ephemeral ports; stopped afterwards."""
    import ack_test_backend

    from ack_secrets_provider.core.server.app import HealthSettings, MetricsSettings, build_app
    from ack_secrets_provider.core.settings import ProviderSettings

    ack_test_backend.reset()
    app = build_app(
        ProviderSettings(fetch_concurrency=2), str(tmp_path / "provider"), grace_period=2.0,
        health=HealthSettings("127.0.0.1", 0, "/healthz", 2.0),
        metrics=MetricsSettings("127.0.0.1", 0),
    )
    app.start()
    try:
        yield app
    finally:
        app.stop()
