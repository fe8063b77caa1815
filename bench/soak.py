"""`python bench/soak.py --minutes N [--rate R]`: a long run that shows whether anything grows.

The provider (`ack-secrets-provider serve`, its own process) takes continuous mounts from a few
client threads at a modest rate (`--rate` mounts per second in total; the machine is shared) while
the loopback emulator (its own process) rotates secrets and opens fault windows:

- mounts: KMS objects with the provider's AccessKey, OOS parameters (batched), pod-level RRSA
  with ServiceAccount tokens that kubelet would rotate (a new token per pod every 2 minutes), and
  failures: a missing secret (NOT_FOUND), a denied one (PERMISSION_DENIED), a mount mixing a good
  and a missing object;
- rotations: a new version of some KMS secrets and OOS parameters every 15 s;
- fault windows, every 2 minutes: 20 s of 20 % 503s and 100 ms latency, then a 10 s outage.

Every 30 s it prints the provider's RSS, open file descriptors and threads, and the mounts of the
interval by result (gRPC code); at the end, the first and last figures side by side.

`--burst` then measures the memory worst case an upstream can cause within the bounds: 16
concurrent mounts (the default `--max-concurrent-mounts`) of 4 objects whose values are each just
under the answer bound (`--max-upstream-response-bytes`, 1 MiB), all fetched at once and cached;
it prints the provider's peak RSS (VmHWM) before and after.

Everything listens on 127.0.0.1 or a unix socket; every process started here is stopped on exit.
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import ProviderProcess, mount_once, provider  # noqa: E402

from ack_secrets_provider.auth.emulator import FakeKubeApi  # noqa: E402
from ack_secrets_provider.auth.kube import ROLE_ANNOTATION  # noqa: E402
from ack_secrets_provider.core.emulator.testing import (  # noqa: E402
    EmulatorHandle,
    running_emulator_process,
)
from ack_secrets_provider.core.server.driver_client import PodRef, driver_attributes  # noqa: E402

ACCOUNT = "1234567890"
OIDC = f"acs:ram::{ACCOUNT}:oidc-provider/ack-rrsa-soak"
KEY_ID, KEY_SECRET = "LTAIsoakAccessKey001", "soak-access-key-secret"
PRINCIPAL = f"acs:ram::{ACCOUNT}:user/soak"
SERVICE_ACCOUNTS = 3
PODS_PER_SA = 4
KMS_SECRETS = 12
OOS_PARAMS = 6
REPORT_EVERY = 30.0
ROTATE_EVERY = 15.0
TOKEN_EVERY = 120.0
FAULT_CYCLE = 120.0
BURST_MOUNTS = 16
BURST_OBJECTS = 4
#: a value whose GetSecretValue answer stays just under the 1 MiB answer bound
BURST_VALUE_BYTES = 1_040_000


def role(k: int) -> str:
    return f"acs:ram::{ACCOUNT}:role/soak-sa-{k}"


def seed() -> dict[str, Any]:
    return {
        "access_keys": [{"id": KEY_ID, "secret": KEY_SECRET, "principal": PRINCIPAL}],
        "policies": [{"principal": PRINCIPAL, "allow": {"kms": ["soak/*"], "oos": ["soak-*"]}}]
        + [{"principal": role(k), "allow": {"kms": ["soak/*"]}} for k in range(SERVICE_ACCOUNTS)],
        "kms": {"secrets": [{"name": f"soak/s{i}", "data": f"v1-{i}-" + "x" * 200}
                            for i in range(KMS_SECRETS)]
                + [{"name": "denied/secret", "data": "nobody may read this"}]},
        "oos": {"parameters": [{"name": f"soak-p{i}", "values": [f"p1-{i}"]}
                               for i in range(OOS_PARAMS)]},
        "sts": {
            "oidc_providers": [{"arn": OIDC, "issuer": "https://oidc.soak/c1"}],
            "roles": [{"arn": role(k), "oidc_subjects": [f"system:serviceaccount:soak:sa-{k}"]}
                      for k in range(SERVICE_ACCOUNTS)],
        },
    }


def objects(*entries: tuple[str, str]) -> str:
    return "".join(f"- objectName: {name}\n  objectType: {kind}\n" for kind, name in entries)


class Load:
    """The mount mix. Thread-safe; tokens are re-minted as kubelet would rotate them."""

    def __init__(self, emulator: EmulatorHandle) -> None:
        self.emulator = emulator
        self.rng = random.Random(42)
        self.lock = threading.Lock()
        self.tokens: dict[int, str] = {}
        self.mint_tokens()

    def mint_tokens(self) -> None:
        fresh = {k: str(self.emulator.admin("POST", "sts/mint_token", {
            "provider": OIDC, "subject": f"system:serviceaccount:soak:sa-{k}",
            "expires_in": 3600})["token"]) for k in range(SERVICE_ACCOUNTS)}
        with self.lock:
            self.tokens = fresh

    def next(self) -> tuple[str, str]:
        """(kind of mount, driver attributes)."""
        with self.lock:
            roll = self.rng.random()
            pick = self.rng.sample(range(KMS_SECRETS), 3)
            k = self.rng.randrange(SERVICE_ACCOUNTS)
            pod = self.rng.randrange(PODS_PER_SA)
            token = self.tokens[k]
        kms = [("kms", f"soak/s{i}") for i in pick]
        if roll < 0.35:
            return "kms", driver_attributes({"objects": objects(*kms)})
        if roll < 0.55:
            oos = [("oos", f"soak-p{i}") for i in range(OOS_PARAMS)][: 2 + pod % 3]
            return "oos", driver_attributes({"objects": objects(*oos)})
        if roll < 0.80:
            ref = PodRef(name=f"app-{k}-{pod}", namespace="soak",
                         uid=str(uuid.UUID(int=k * 100 + pod + 1)), service_account=f"sa-{k}")
            return "pod-rrsa", driver_attributes(
                {"objects": objects(*kms[:2]), "usePodServiceAccountToken": "true"},
                pod=ref, tokens={"sts.aliyuncs.com": token})
        if roll < 0.88:
            return "missing", driver_attributes({"objects": objects(("kms", "soak/missing"))})
        if roll < 0.94:
            return "denied", driver_attributes({"objects": objects(("kms", "denied/secret"))})
        return "mixed", driver_attributes(
            {"objects": objects(kms[0], ("kms", "soak/missing-too"))})


def rotate(emulator: EmulatorHandle, round_: int) -> None:
    for i in range(3):
        emulator.admin("POST", "kms/put-secret-version",
                       {"name": f"soak/s{(round_ + i) % KMS_SECRETS}",
                        "data": f"v{round_}-{i}-" + "y" * 200})
    emulator.admin("POST", "oos/put-parameter",
                   {"name": f"soak-p{round_ % OOS_PARAMS}", "value": f"p{round_}"})


def faults_at(emulator: EmulatorHandle, phase: float, current: str) -> str:
    """Open or close the fault window for `phase` seconds into the cycle; returns its name."""
    wanted = "errors" if phase < 20 else "outage" if 60 <= phase < 70 else "none"
    if wanted != current:
        emulator.clear_faults()
        if wanted == "errors":
            emulator.set_faults(error_ratio=0.2, latency_ms=100, seed=int(phase) + 1)
        elif wanted == "outage":
            emulator.set_faults(outage_seconds=10)
    return wanted


def figures(process: ProviderProcess) -> tuple[float, int, int]:
    """RSS (MB), open file descriptors and threads of the provider."""
    return (process.ps.memory_info().rss / (1024 * 1024), process.ps.num_fds(),
            process.ps.num_threads())


def burst(process: ProviderProcess, emulator: EmulatorHandle) -> None:
    """Every Mount slot busy with answers at the size bound: the provider's memory worst case."""
    from concurrent.futures import ThreadPoolExecutor

    for i in range(BURST_MOUNTS * BURST_OBJECTS):  # through the admin API: a seed this big
        emulator.admin("POST", "kms/put-secret-version",  # would be slow to load
                       {"name": f"soak/big-{i}", "data": chr(65 + i % 26) * BURST_VALUE_BYTES})
    before = process.peak_rss_mb()
    mounts = [driver_attributes({"objects": objects(*[
        ("kms", f"soak/big-{m * BURST_OBJECTS + j}") for j in range(BURST_OBJECTS)])})
        for m in range(BURST_MOUNTS)]
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=BURST_MOUNTS) as pool:
        outcomes = list(pool.map(lambda a: mount_once(process.client, a, timeout=60), mounts))
    codes = Counter(o.code for o in outcomes)
    rss, fds, nthreads = figures(process)
    print(f"\nburst: {BURST_MOUNTS} concurrent mounts x {BURST_OBJECTS} objects of "
          f"{BURST_VALUE_BYTES:,} bytes in {time.monotonic() - started:.1f} s: "
          + " ".join(f"{c}={n}" for c, n in sorted(codes.items()))
          + f"; peak RSS (VmHWM) {before:.1f} -> {process.peak_rss_mb():.1f} MB, RSS now "
          f"{rss:.1f} MB, fds {fds}, threads {nthreads}")


def run(minutes: float, rate: float, workers: int, with_burst: bool) -> int:
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ack-soak-")))
        seed_path = workdir / "seed.yaml"
        seed_path.write_text(yaml.safe_dump(seed()))
        emulator = stack.enter_context(running_emulator_process(seed_path))
        kube = FakeKubeApi(token="soak-kube-token").start()
        stack.callback(kube.stop)
        for k in range(SERVICE_ACCOUNTS):
            kube.add("soak", f"sa-{k}", {ROLE_ANNOTATION: role(k)})
        kube_token = workdir / "kube-token"
        kube_token.write_text("soak-kube-token\n")
        url = emulator.http_url
        flags = ["--region", "cn-hangzhou", "--endpoint-override", f"kms={url}",
                 "--endpoint-override", f"oos={url}", "--endpoint-override", f"sts={url}",
                 "--kube-api-url", kube.url, "--cache-ttl", "5s",
                 "--max-concurrent-kms-secret-pulls", "0",
                 "--max-concurrent-oos-secret-pulls", "0"]
        keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
        env = {**keep, "ACCESS_KEY_ID": KEY_ID, "SECRET_ACCESS_KEY": KEY_SECRET,
               "ALICLOUD_OIDC_PROVIDER_ARN": OIDC, "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true",
               "NO_PROXY": "*"}
        process = stack.enter_context(provider(flags, env, str(kube_token),
                                               workdir / "provider.log"))
        code = soak(process, emulator, minutes, rate, workers) if minutes > 0 else 0
        if with_burst:
            burst(process, emulator)
        return code


def soak(process: ProviderProcess, emulator: EmulatorHandle, minutes: float, rate: float,
         workers: int) -> int:
    load = Load(emulator)
    stop = threading.Event()
    results: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    lock = threading.Lock()
    pause = workers / rate

    def client() -> None:
        while not stop.is_set():
            kind, attributes = load.next()
            outcome = mount_once(process.client, attributes, timeout=10)
            with lock:
                results[outcome.code] += 1
                kinds[f"{kind}:{outcome.code}"] += 1
            stop.wait(max(0.0, pause - outcome.seconds))

    threads = [threading.Thread(target=client, daemon=True) for _ in range(workers)]
    for thread in threads:
        thread.start()
    started = time.monotonic()
    end = started + minutes * 60
    next_report, next_rotation, next_tokens = REPORT_EVERY, ROTATE_EVERY, TOKEN_EVERY
    window, rotations, rows = "none", 0, []
    print(f"soak: {minutes:g} min, ~{rate:g} mounts/s from {workers} clients; provider pid "
          f"{process.proc.pid}")
    print(f"{'t s':>6} {'rss MB':>7} {'fds':>4} {'thr':>4} {'window':>7}  mounts in the interval")
    try:
        for tick in itertools.count():
            now = time.monotonic()
            if now >= end:
                break
            elapsed = now - started
            window = faults_at(emulator, elapsed % FAULT_CYCLE, window)
            if elapsed >= next_rotation:
                rotations += 1
                rotate(emulator, rotations)
                next_rotation += ROTATE_EVERY
            if elapsed >= next_tokens:
                load.mint_tokens()
                next_tokens += TOKEN_EVERY
            if elapsed >= next_report:
                with lock:
                    interval = dict(results)
                    results.clear()
                rss, fds, nthreads = figures(process)
                rows.append((elapsed, rss, fds, nthreads, sum(interval.values())))
                print(f"{elapsed:6.0f} {rss:7.1f} {fds:4d} {nthreads:4d} {window:>7}  "
                      + " ".join(f"{code}={n}" for code, n in sorted(interval.items())),
                      flush=True)
                next_report += REPORT_EVERY
            time.sleep(0.2 if tick else 0.0)
    finally:
        stop.set()
        for thread in threads:
            thread.join(15)
        emulator.clear_faults()
    total = sum(kinds.values())
    print(f"\n{total} mounts, {rotations} rotation rounds; by kind and result:")
    for key, n in sorted(kinds.items()):
        print(f"  {key:32} {n}")
    if len(rows) >= 2:
        first, last = rows[0], rows[-1]
        print(f"\nRSS {first[1]:.1f} MB at {first[0]:.0f} s -> {last[1]:.1f} MB at {last[0]:.0f} s "
              f"(max {max(r[1] for r in rows):.1f} MB, peak VmHWM {process.peak_rss_mb():.1f} MB); "
              f"fds {first[2]} -> {last[2]} (max {max(r[2] for r in rows)}); "
              f"threads {first[3]} -> {last[3]} (max {max(r[3] for r in rows)})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="how long to run")
    parser.add_argument("--rate", type=float, default=6.0,
                        help="mounts per second in total (keep it modest on a shared machine)")
    parser.add_argument("--workers", type=int, default=3, help="client threads")
    parser.add_argument("--burst", action="store_true",
                        help="then measure the memory worst case (answers at the size bound)")
    args = parser.parse_args(argv)
    return run(args.minutes, args.rate, args.workers, args.burst)


if __name__ == "__main__":
    sys.exit(main())
