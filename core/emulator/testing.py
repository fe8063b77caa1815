"""Running the emulator from tests, benchmarks and the demo.

    with running_emulator(seed_dict, tls=True) as emu:
        config = Config(endpoint=emu.address, protocol="http", ...)
        emu.rotate("myservice", "app/db", "new-value")
        emu.set_faults(throttle_next=2, service="myservice")
        emu.counters()["by_api"]["myservice.GetValue"]

`running_emulator` starts it in this process (threads); `running_emulator_process` starts
`python -m ack_secrets_provider.core.emulator` as a child process (for code that must not share
the interpreter, such as the demo). Both yield an `EmulatorHandle`, whose admin helpers talk to
the admin HTTP API, so they behave the same either way.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ack_secrets_provider.core.emulator.api import EmulatorPart
from ack_secrets_provider.core.emulator.registry import discover_parts
from ack_secrets_provider.core.emulator.server import Emulator

# Never use a proxy for the loopback admin API, whatever the environment says.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


ACCESS_KEY_ID = "LTAI5tTestAccessKey001"
ACCESS_KEY_SECRET = "test-access-key-secret-001"
PRINCIPAL = "acs:ram::1234567890123456:user/tester"
LIMITED_ACCESS_KEY_ID = "LTAI5tTestLimitedKey02"
LIMITED_ACCESS_KEY_SECRET = "test-limited-secret-002"
LIMITED_PRINCIPAL = "acs:ram::1234567890123456:user/limited"


def default_seed(parts: Sequence[type[EmulatorPart]] | None = None) -> dict[str, Any]:
    """A fresh copy of the small seed the `emulator` fixtures use (tests may extend it): two
    AccessKeys and each part's `sample_seed()` (see the parts' modules for their data). The
    LIMITED principal may read only what each part's `sample_allow` says.
    """
    classes = discover_parts() if parts is None else parts
    return {
        "access_keys": [
            {"id": ACCESS_KEY_ID, "secret": ACCESS_KEY_SECRET, "principal": PRINCIPAL},
            {"id": LIMITED_ACCESS_KEY_ID, "secret": LIMITED_ACCESS_KEY_SECRET,
             "principal": LIMITED_PRINCIPAL},
        ],
        "policies": [
            {"principal": LIMITED_PRINCIPAL, "allow": {
                part.service: list(part.sample_allow) for part in classes if part.sample_allow
            }},
        ],
        **{part.service: dict(part.sample_seed()) for part in classes if part.sample_seed()},
    }


class AdminError(RuntimeError):
    """The admin API refused a request (bad body or unknown route)."""


@dataclass(frozen=True)
class EmulatorHandle:
    """Where a running emulator listens, and helpers for its admin API.

    address / tls_address: `127.0.0.1:PORT` (what the SDK `Config.endpoint` takes);
    http_url / https_url: with scheme (what endpoint overrides take);
    root_ca / intermediate_ca: the generated test chain (TLS only).
    """

    http_url: str
    address: str
    https_url: str | None = None
    tls_address: str | None = None
    root_ca: Path | None = None
    intermediate_ca: Path | None = None
    tls_dir: Path | None = None

    # --- admin API ----------------------------------------------------------------------------
    def admin(self, method: str, route: str, body: Mapping[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.http_url}/_admin/{route.lstrip('/')}",
                                         data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with _OPENER.open(request, timeout=10) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")
            raise AdminError(f"admin {method} {route} failed ({exc.code}): {detail}") from None

    def health(self) -> dict[str, Any]:
        return dict(self.admin("GET", "health"))

    def rotate(self, service: str, name: str, value: str) -> str:
        """Store a new current version of `name` in the part `service` (its admin operation
        `rotate`); returns the new version as the service reports it."""
        return str(self.admin("POST", f"{service}/rotate", {"name": name, "value": value})
                   ["version"])

    def set_faults(self, service: str | None = None, seed: int | None = None,
                   **faults: Any) -> dict[str, Any]:
        """Replace the faults of one scope (see faults.FaultConfig for the fields)."""
        body: dict[str, Any] = dict(faults)
        if service:
            body["service"] = service
        if seed is not None:
            body["seed"] = seed
        return dict(self.admin("PUT", "faults", body))

    def clear_faults(self) -> None:
        self.admin("DELETE", "faults")

    def counters(self) -> dict[str, Any]:
        return dict(self.admin("GET", "counters"))

    def reset_counters(self) -> None:
        self.admin("POST", "counters/reset", {})

    def issue_temporary_credentials(self, principal: str, duration_seconds: float = 3600,
                                    session_name: str | None = None) -> dict[str, str]:
        """STS-style credentials bound to `principal` (AccessKeyId, AccessKeySecret,
        SecurityToken, Expiration)."""
        body: dict[str, Any] = {"principal": principal, "duration_seconds": duration_seconds}
        if session_name:
            body["session_name"] = session_name
        return dict(self.admin("POST", "credentials/temporary", body))

    def expire_credentials(self, access_key_id: str) -> None:
        self.admin("POST", "credentials/expire", {"access_key_id": access_key_id})

    def set_policy(self, principal: str, allow: Mapping[str, Sequence[str]]) -> None:
        self.admin("PUT", "policies", {"principal": principal,
                                       "allow": {k: list(v) for k, v in allow.items()}})


def _handle(info: Mapping[str, Any]) -> EmulatorHandle:
    return EmulatorHandle(
        http_url=info["http_url"], address=info["address"], https_url=info.get("https_url"),
        tls_address=info.get("tls_address"),
        root_ca=Path(info["root_ca"]) if info.get("root_ca") else None,
        intermediate_ca=Path(info["intermediate_ca"]) if info.get("intermediate_ca") else None,
        tls_dir=Path(info["tls_dir"]) if info.get("tls_dir") else None,
    )


def describe(emulator: Emulator) -> dict[str, Any]:
    """The machine-readable summary the CLI prints as its first line."""
    tls = emulator.tls
    return {
        "http_url": emulator.http_url,
        "address": emulator.http_address,
        "https_url": emulator.https_url,
        "tls_address": emulator.https_address,
        "root_ca": str(tls.root) if tls else None,
        "intermediate_ca": str(tls.intermediate) if tls else None,
        "tls_dir": str(tls.directory) if tls else None,
        "services": sorted(emulator.parts),
    }


@contextmanager
def running_emulator(
    seed: str | os.PathLike[str] | Mapping[str, Any] | None = None,
    *,
    tls: bool = False,
    tls_dir: str | os.PathLike[str] | None = None,
    parts: Sequence[type[EmulatorPart]] | None = None,
) -> Iterator[EmulatorHandle]:
    """Start the emulator in this process on 127.0.0.1 port 0; stop it on exit."""
    emulator = Emulator(seed if isinstance(seed, Mapping) or seed is None else Path(seed),
                        parts=parts)
    with tempfile.TemporaryDirectory(prefix="emulator-tls-") as scratch:
        emulator.start("127.0.0.1:0", tls_listen="127.0.0.1:0" if tls else None,
                       tls_dir=Path(tls_dir or scratch) if tls else None)
        try:
            yield _handle(describe(emulator))
        finally:
            emulator.stop()


@contextmanager
def running_emulator_process(
    data: str | os.PathLike[str],
    *,
    tls: bool = False,
    tls_dir: str | os.PathLike[str] | None = None,
    startup_timeout: float = 20.0,
) -> Iterator[EmulatorHandle]:
    """Start `python -m ack_secrets_provider.core.emulator` as a child; terminate it on exit."""
    with tempfile.TemporaryDirectory(prefix="emulator-tls-") as scratch:
        args = [sys.executable, "-m", "ack_secrets_provider.core.emulator",
                "--listen", "127.0.0.1:0", "--data", os.fspath(data)]
        if tls:
            args += ["--tls-listen", "127.0.0.1:0", "--tls-dir", os.fspath(tls_dir or scratch)]
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=None, text=True)
        try:
            line = _first_line(proc, startup_timeout)
            yield _handle(json.loads(line))
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
            if proc.stdout:
                proc.stdout.close()


def _first_line(proc: subprocess.Popen[str], timeout: float) -> str:
    import selectors

    assert proc.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            raise RuntimeError(f"emulator did not start within {timeout}s")
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError(f"emulator exited before listening (exit code {proc.wait(5)})")
    return line
