"""`python bench/run.py [--quick] [--json PATH] [--scenarios 1,2,3,4,5]`: the scale benchmark.

First the floor (issue 13): bench/floor.py, a minimal Python gRPC server on the same kind of
socket doing the same JSON + YAML parsing, measured side by side with the provider in the same
run with the same client; the ratios to it and the memory targets are printed MET/MISSED.

Every scenario of issue 5 against the loopback emulator, each run twice in the same run with a
fresh provider process: `tuned` (the defaults: value cache, coalescing, parallel fetch) and `off`
(`--no-cache --serial-fetch`, i.e. the existing provider's behaviour). Both modes get the same
rate-limit flags (lifted: 0 = unlimited) so the comparison is about cache and concurrency.

The provider runs as its own process (`ack-secrets-provider serve`), the
emulator as another (`running_emulator_process`), so the CPU and peak RSS reported are the
provider's own (psutil / VmHWM). See docs/performance.md for the method and a run's table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (  # noqa: E402
    Outcome,
    ProviderProcess,
    Record,
    closed_loop,
    open_loop,
    percentile,
    provider,
    summarize,
    upstream_and_sts,
)
from startup import measure_startup  # noqa: E402

from ack_secrets_provider.auth.emulator import FakeKubeApi  # noqa: E402
from ack_secrets_provider.auth.kube import ROLE_ANNOTATION  # noqa: E402
from ack_secrets_provider.core.emulator.testing import (  # noqa: E402
    EmulatorHandle,
    running_emulator_process,
)
from ack_secrets_provider.core.server.driver_client import PodRef, driver_attributes  # noqa: E402
from ack_secrets_provider.core.settings import RetryPolicy  # noqa: E402

ACCOUNT = "1234567890"
OIDC = f"acs:ram::{ACCOUNT}:oidc-provider/ack-rrsa-bench"
KEY_ID, KEY_SECRET = "LTAIbenchAccessKey01", "bench-access-key-secret"
PRINCIPAL = f"acs:ram::{ACCOUNT}:user/bench"
SERVICE_ACCOUNTS = 5
PODS = 100
STORM_SECRETS = 5
MODES = {"tuned": [], "off": ["--no-cache", "--serial-fetch"]}
#: issue 13's targets: (name, bound) per ratio or figure
FLOOR_TARGETS = {"cache_hit_x_floor": 1.4, "cold_x_floor": 3.0, "tail_p99_x_p50": 2.0,
                 "peak_rss_mb": 70.0, "idle_rss_mb": 45.0}


@dataclass(frozen=True)
class Sizes:
    s1_mounts: int
    s2_mounts_c1: int
    s2_mounts_c8: int
    s3_round_seconds: float
    s4_mounts: int
    s5_rate: float
    s5_before: float
    s5_outage: float
    s5_after: float
    floor_mounts: int = 400
    floor_rounds: int = 3


QUICK = Sizes(s1_mounts=150, s2_mounts_c1=10, s2_mounts_c8=32, s3_round_seconds=3.0,
              s4_mounts=200, s5_rate=20.0, s5_before=2.0, s5_outage=10.0, s5_after=5.0)
FULL = Sizes(s1_mounts=1000, s2_mounts_c1=40, s2_mounts_c8=160, s3_round_seconds=6.0,
             s4_mounts=1000, s5_rate=20.0, s5_before=3.0, s5_outage=10.0, s5_after=8.0,
             floor_mounts=1500, floor_rounds=5)


def role(k: int) -> str:
    return f"acs:ram::{ACCOUNT}:role/bench-sa-{k}"


def seed(sizes: Sizes) -> dict[str, Any]:
    """Access key, RRSA roles (one per ServiceAccount) and every secret the scenarios read."""
    names = ["bench/one"]
    names += [f"bench/s2-{i}" for i in range(10 * (sizes.s2_mounts_c1 + sizes.s2_mounts_c8 + 2))]
    names += [f"bench/app-{j}" for j in range(STORM_SECRETS)]
    names += [f"bench/s4-{i}" for i in range(2 * (sizes.s4_mounts + 1))]
    names += [f"bench/s5-{i}" for i in range(20)]
    return {
        "access_keys": [{"id": KEY_ID, "secret": KEY_SECRET, "principal": PRINCIPAL}],
        "policies": [{"principal": PRINCIPAL, "allow": {"kms": ["bench/*"]}}]
        + [{"principal": role(k), "allow": {"kms": ["bench/app-*"]}}
           for k in range(SERVICE_ACCOUNTS)],
        "kms": {"secrets": [{"name": n, "data": f"value-of-{n}-" + "x" * 64} for n in names]},
        "sts": {
            "oidc_providers": [{"arn": OIDC, "issuer": "https://oidc.bench/c1"}],
            "roles": [{"arn": role(k), "oidc_subjects": [f"system:serviceaccount:bench:sa-{k}"]}
                      for k in range(SERVICE_ACCOUNTS)],
        },
    }


def kms_objects(names: list[str]) -> str:
    return "".join(f"- objectName: {n}\n  objectType: kms\n" for n in names)


def attrs(names: list[str], **extra: str) -> str:
    return driver_attributes({"objects": kms_objects(names), **extra})


class Bench:
    def __init__(self, sizes: Sizes, workdir: Path, emulator: EmulatorHandle,
                 kube: FakeKubeApi, kube_token: str) -> None:
        self.sizes = sizes
        self.workdir = workdir
        self.emulator = emulator
        self.kube = kube
        self.kube_token = kube_token
        self.records: list[Record] = []
        self.last_outcomes: list[Outcome] = []

    def env(self) -> dict[str, str]:
        # PYTHONPATH: lets a run serve another source tree (a before/after comparison)
        passed = ("PATH", "HOME", "LANG", "TMPDIR", "PYTHONPATH")
        keep = {k: v for k, v in os.environ.items() if k in passed}
        return {**keep, "ACCESS_KEY_ID": KEY_ID, "SECRET_ACCESS_KEY": KEY_SECRET,
                "ALICLOUD_OIDC_PROVIDER_ARN": OIDC, "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true",
                "NO_PROXY": "*"}

    @contextmanager
    def provider(self, mode: str, *flags: str) -> Iterator[ProviderProcess]:
        url = self.emulator.http_url
        base = ["--region", "cn-hangzhou", "--endpoint-override", f"kms={url}",
                "--endpoint-override", f"oos={url}", "--endpoint-override", f"sts={url}",
                "--kube-api-url", self.kube.url,
                "--max-concurrent-kms-secret-pulls", "0", "--max-concurrent-oos-secret-pulls", "0"]
        self.emulator.clear_faults()
        self.emulator.reset_counters()
        with provider([*base, *MODES[mode], *flags], self.env(), self.kube_token,
                      self.workdir / f"provider-{mode}.log") as process:
            yield process

    def measure(self, process: ProviderProcess, scenario: int, mode: str, variant: str,
                run: Callable[[], tuple[list[Any], float]], **extra: Any) -> Record:
        self.emulator.reset_counters()
        cpu0 = process.cpu_seconds()
        outcomes, wall = run()
        self.last_outcomes = outcomes
        cpu = process.cpu_seconds() - cpu0
        upstream, sts = upstream_and_sts(self.emulator)
        record = summarize(scenario, mode, variant, outcomes, wall, cpu, process.peak_rss_mb(),
                           upstream, sts, **extra)
        self.records.append(record)
        print_row(record)
        return record

    # -- the floor (issue 13) ----------------------------------------------------------------

    @contextmanager
    def process(self, name: str, flags: Sequence[str] = (), *,
                floor: bool = False) -> Iterator[ProviderProcess]:
        """A provider (defaults + `flags`) or the floor server (`flags`: its own), beside the
        others."""
        url = self.emulator.http_url
        base = [] if floor else [
            "--region", "cn-hangzhou", "--endpoint-override", f"kms={url}",
            "--kube-api-url", self.kube.url,
            "--max-concurrent-kms-secret-pulls", "0", "--max-concurrent-oos-secret-pulls", "0"]
        with provider([*base, *flags], self.env(), self.kube_token,
                      self.workdir / f"{name}.log", floor=floor) as process:
            yield process

    def floor_ratios(self) -> dict[str, Any]:
        """CPU per mount of the floor, a cache hit and a cold one-object mount (cache off), from
        interleaved batches of one client; the cold 10-object tail from a fresh process; RSS."""
        sizes = self.sizes
        one = attrs(["bench/one"])
        self.emulator.clear_faults()
        with ExitStack() as stack:
            sdk = ["--sdk-endpoint", self.emulator.address]
            procs = {"floor": stack.enter_context(self.process("floor", floor=True)),
                     "sdk_floor": stack.enter_context(self.process("sdk-floor", sdk, floor=True)),
                     "cache_hit": stack.enter_context(self.process("floor-hit")),
                     "cold": stack.enter_context(self.process("floor-cold", ["--no-cache"]))}
            time.sleep(0.5)  # let start-up settle before reading the idle figure
            idle, floor_idle = procs["cache_hit"].rss_mb(), procs["floor"].rss_mb()
            for proc in procs.values():
                closed_loop(proc.client, [one] * 20, 1)  # warm-up: connections, first fetch
            per_mount: dict[str, list[float]] = {name: [] for name in procs}
            order = list(procs)
            for r in range(sizes.floor_rounds):
                first = r % len(order)
                for name in order[first:] + order[:first]:  # rotate who goes first
                    proc = procs[name]
                    cpu0 = proc.cpu_seconds()
                    outcomes, _ = closed_loop(proc.client, [one] * sizes.floor_mounts, 1)
                    if not all(o.ok for o in outcomes):
                        raise RuntimeError(f"{name}: a mount failed during the floor run")
                    per_mount[name].append((proc.cpu_seconds() - cpu0) / sizes.floor_mounts)
            peaks = [procs["cache_hit"].peak_rss_mb(), procs["cold"].peak_rss_mb()]
            floor_peak = procs["floor"].peak_rss_mb()
        # the tail: a fresh process, cache off, 10 objects at 20 ms, 8 clients, no warm-up
        names = [f"bench/s2-{i}" for i in range(10 * sizes.s2_mounts_c8)]
        batch = [attrs(names[10 * m:10 * m + 10]) for m in range(sizes.s2_mounts_c8)]
        with self.process("floor-tail", ["--no-cache"]) as proc:
            self.emulator.set_faults(latency_ms=20)
            outcomes, _ = closed_loop(proc.client, batch, 8)
            self.emulator.clear_faults()
            peaks.append(proc.peak_rss_mb())
        latencies = [o.seconds * 1000 for o in outcomes]
        med = {name: statistics.median(values) for name, values in per_mount.items()}
        spread = {name: (min(v) * 1000, max(v) * 1000) for name, v in per_mount.items()}
        tail_p50, tail_p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
        return {
            "floor_ms": med["floor"] * 1000, "cache_hit_ms": med["cache_hit"] * 1000,
            "cold_ms": med["cold"] * 1000, "spread_ms": spread, "rounds": sizes.floor_rounds,
            "mounts_per_round": sizes.floor_mounts, "sdk_floor_ms": med["sdk_floor"] * 1000,
            "cache_hit_x_floor": med["cache_hit"] / med["floor"],
            "cold_x_floor": med["cold"] / med["floor"],
            "sdk_floor_x_floor": med["sdk_floor"] / med["floor"],
            "cold_x_sdk_floor": med["cold"] / med["sdk_floor"],
            "tail_p50_ms": tail_p50, "tail_p99_ms": tail_p99,
            "tail_ok": all(o.ok for o in outcomes),
            "tail_p99_x_p50": tail_p99 / tail_p50 if tail_p50 else float("inf"),
            "peak_rss_mb": max(peaks), "idle_rss_mb": idle, "floor_idle_rss_mb": floor_idle,
            "floor_peak_rss_mb": floor_peak,
        }

    # -- scenarios ----------------------------------------------------------------------------

    def scenario1(self, mode: str) -> None:
        """1 object, 0 ms upstream latency: the provider's own overhead per mount."""
        one = attrs(["bench/one"])
        with self.provider(mode) as p:
            closed_loop(p.client, [one] * 5, 1)  # warm-up: connections, first fetch
            for concurrency in (1, 8):
                self.measure(p, 1, mode, f"c={concurrency}",
                             lambda c=concurrency: closed_loop(
                                 p.client, [one] * self.sizes.s1_mounts, c))

    def scenario2(self, mode: str) -> None:
        """10 objects at 20 ms upstream latency, every mount cold (distinct objects)."""
        counter = iter(range(10**6))

        def fresh(n: int) -> list[str]:
            return [attrs([f"bench/s2-{next(counter)}" for _ in range(10)]) for _ in range(n)]

        with self.provider(mode) as p:
            closed_loop(p.client, fresh(1), 1)  # warm-up
            self.emulator.set_faults(latency_ms=20)
            for concurrency, n in ((1, self.sizes.s2_mounts_c1), (8, self.sizes.s2_mounts_c8)):
                batch = fresh(n)
                self.measure(p, 2, mode, f"c={concurrency}",
                             lambda b=batch, c=concurrency: closed_loop(p.client, b, c))

    def scenario3(self, mode: str) -> None:
        """Republish storm: 100 pods of 5 ServiceAccounts x 5 objects, 5 compressed minutes."""
        period = self.sizes.s3_round_seconds
        tokens = {k: self.emulator.admin("POST", "sts/mint_token", {
            "provider": OIDC, "subject": f"system:serviceaccount:bench:sa-{k}",
            "expires_in": 3600})["token"] for k in range(SERVICE_ACCOUNTS)}
        names = [f"bench/app-{j}" for j in range(STORM_SECRETS)]
        pods = []
        for p in range(PODS):
            k = p % SERVICE_ACCOUNTS
            pod = PodRef(name=f"app-{p}", namespace="bench", uid=str(uuid.UUID(int=p + 1)),
                         service_account=f"sa-{k}")
            pods.append(driver_attributes(
                {"objects": kms_objects(names), "usePodServiceAccountToken": "true"},
                pod=pod, tokens={"sts.aliyuncs.com": tokens[k]}))
        rounds = 5
        schedule = [(r * period + (p / PODS) * period * 0.8, pods[p])
                    for r in range(rounds) for p in range(PODS)]
        marks: list[int] = []

        def mark() -> None:
            marks.append(upstream_and_sts(self.emulator)[0])

        ticks = [(r * period, mark) for r in range(1, rounds)]
        # The compressed "minute" is `period` seconds; the TTL is compressed the same way
        # (60 s default TTL : 60 s republish period).
        flags = ["--cache-ttl", f"{period:g}s"] if mode == "tuned" else []
        with self.provider(mode, *flags) as p:
            def run() -> tuple[list[Any], float]:
                outcomes, wall, _ = open_loop(p.client, schedule, workers=16, timeout=30,
                                              ticks=ticks)
                return outcomes, wall

            record = self.measure(p, 3, mode, "100 pods x 5", run)
        total = record.upstream_calls
        bounds = [0, *marks, total]
        per_round = [bounds[i + 1] - bounds[i] for i in range(rounds)]
        record.extra.update(per_round=per_round, distinct_pairs=SERVICE_ACCOUNTS * STORM_SECRETS,
                            calls_if_uncached_per_round=PODS * STORM_SECRETS,
                            service_accounts=SERVICE_ACCOUNTS, round_seconds=period)

    def scenario4(self, mode: str) -> None:
        """30% of upstream calls throttled (x-acs-retry-after 200 ms), every mount cold."""
        n = self.sizes.s4_mounts
        batch = [attrs([f"bench/s4-{2 * i}", f"bench/s4-{2 * i + 1}"]) for i in range(n)]
        with self.provider(mode) as p:
            closed_loop(p.client, [attrs(["bench/one"])], 1)  # warm-up
            self.emulator.set_faults(throttle_ratio=0.3, retry_after_ms=200, seed=7)
            record = self.measure(p, 4, mode, "30% throttled",
                                  lambda: closed_loop(p.client, batch, 8, timeout=60))
            counters = self.emulator.counters()
        record.extra["throttled_calls"] = int(
            counters.get("by_result", {}).get("Rejected.Throttling", 0))

    def scenario5(self, mode: str) -> None:
        """A 10 s outage (every call 503) under a steady 20 mounts/s; calls made during it."""
        s = self.sizes
        policy = RetryPolicy()
        total = s.s5_before + s.s5_outage + s.s5_after
        count = int(total * s.s5_rate)
        schedule = [(i / s.s5_rate, attrs([f"bench/s5-{i % 20}"])) for i in range(count)]
        marks: dict[str, int] = {}

        def outage_start() -> None:
            marks["start"] = upstream_and_sts(self.emulator)[0]
            self.emulator.set_faults(outage_seconds=s.s5_outage)

        def outage_end() -> None:
            marks["end"] = upstream_and_sts(self.emulator)[0]

        ticks = [(s.s5_before, outage_start), (s.s5_before + s.s5_outage, outage_end)]
        # A 1 s TTL so cached values expire during the outage (with the 60 s default the cache
        # would simply hide a 10 s outage): this measures the retry budget, not the cache.
        flags = ["--cache-ttl", "1s"] if mode == "tuned" else []
        t0_box: list[float] = []
        with self.provider(mode, *flags) as p:
            closed_loop(p.client, [attrs(["bench/one"])], 1)

            def run() -> tuple[list[Any], float]:
                outcomes, wall, t0 = open_loop(p.client, schedule, workers=64, timeout=10,
                                               ticks=ticks)
                t0_box.append(t0)
                return outcomes, wall

            record = self.measure(p, 5, mode, "10 s outage", run)
        t0 = t0_box[0]
        end = t0 + s.s5_before + s.s5_outage
        recovered = [o.started + o.seconds for o in self.last_outcomes
                     if o.ok and o.started >= end]
        record.extra.update(
            calls_during_outage=marks.get("end", 0) - marks.get("start", 0),
            mounts_during_outage=int(s.s5_outage * s.s5_rate),
            retry_budget_tokens=policy.budget_tokens,
            recovery_s=round(min(recovered) - end, 2) if recovered else None,
        )


def print_row(r: Record) -> None:
    print(f"{r.scenario:>2} {r.mode:<6} {r.variant:<14} {r.mounts:>6} {r.success_rate:>8.4f} "
          f"{r.mounts_per_s:>9.1f} {r.p50_ms:>8.1f} {r.p99_ms:>8.1f} {r.upstream_calls:>8} "
          f"{r.sts_calls:>4} {r.cpu_s_per_1000:>8.2f} {r.peak_rss_mb:>7.1f}", flush=True)


HEADER = (" # mode   variant         mounts  success   mount/s   p50 ms   p99 ms upstream  sts "
          "cpu/1000  rss MB")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts (under 3 minutes)")
    parser.add_argument("--json", metavar="PATH", help="write the records as a JSON list")
    parser.add_argument("--scenarios", default="1,2,3,4,5", help="comma-separated, e.g. 1,3")
    parser.add_argument("--no-startup", action="store_true", help="skip the start-up timing")
    parser.add_argument("--no-floor", action="store_true", help="skip the floor and its ratios")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    wanted = [int(x) for x in args.scenarios.split(",") if x.strip()]
    started = time.monotonic()
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ack-bench-")))
        seed_path = workdir / "seed.yaml"
        seed_path.write_text(yaml.safe_dump(seed(sizes)))
        emulator = stack.enter_context(running_emulator_process(seed_path))
        kube = FakeKubeApi(token="bench-kube-token").start()
        stack.callback(kube.stop)
        for k in range(SERVICE_ACCOUNTS):
            kube.add("bench", f"sa-{k}", {ROLE_ANNOTATION: role(k)})
        kube_token = workdir / "kube-token"
        kube_token.write_text("bench-kube-token\n")
        bench = Bench(sizes, workdir, emulator, kube, str(kube_token))
        startup = None if args.no_startup else measure_startup(runs=3 if args.quick else 5)
        if startup:
            print(f"start-up: socket ready p50 {startup['socket_ready_ms_p50']:.0f} ms, "
                  f"first Version answered p50 {startup['first_version_ms_p50']:.0f} ms "
                  f"({startup['runs']} runs)")
        floor = None if args.no_floor else bench.floor_ratios()
        if floor:
            for line in floor_lines(floor):
                print(line)
        if wanted:
            print(HEADER)
        for number in wanted:
            for mode in MODES:
                getattr(bench, f"scenario{number}")(mode)
        records = bench.records
    elapsed = time.monotonic() - started
    if records:
        print()
        for line in targets(records):
            print(line)
    print(f"\nbenchmark took {elapsed:.0f} s")
    if args.json:
        result = {"floor": floor, "startup": startup, "records": [r.as_json() for r in records]}
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


def floor_lines(f: dict[str, Any]) -> list[str]:
    """The floor, the provider beside it, and issue 13's targets marked MET/MISSED."""
    def verdict(name: str) -> str:
        return "MET" if f[name] <= FLOOR_TARGETS[name] else "MISSED"

    lo, hi = f["spread_ms"]["floor"]
    return [
        f"floor (bench/floor.py: gRPC + the same JSON/YAML parsing, one file): "
        f"{f['floor_ms']:.3f} ms CPU per mount (median of {f['rounds']} interleaved rounds of "
        f"{f['mounts_per_round']} mounts; rounds ranged {lo:.3f}-{hi:.3f} ms)",
        f"  [{verdict('cache_hit_x_floor')}] cache-hit mount: {f['cache_hit_ms']:.3f} ms CPU = "
        f"{f['cache_hit_x_floor']:.2f}x the floor (target <= 1.4x)",
        f"SDK floor (bench/floor.py --sdk-endpoint: the floor + one plain official KMS SDK call "
        f"per mount, no provider code): {f['sdk_floor_ms']:.3f} ms CPU per mount = "
        f"{f['sdk_floor_x_floor']:.2f}x the floor",
        f"  [{verdict('cold_x_floor')}] cold one-object mount (--no-cache): "
        f"{f['cold_ms']:.3f} ms CPU = {f['cold_x_floor']:.2f}x the floor (target <= 3x; the SDK "
        f"floor alone is {f['sdk_floor_x_floor']:.2f}x) = {f['cold_x_sdk_floor']:.2f}x the SDK "
        f"floor",
        f"  [{verdict('tail_p99_x_p50')}] 10 objects at 20 ms, 8 clients, --no-cache, from "
        f"start: p50 {f['tail_p50_ms']:.0f} ms, p99 {f['tail_p99_ms']:.0f} ms = "
        f"{f['tail_p99_x_p50']:.2f}x (target <= 2x){'' if f['tail_ok'] else ' (mounts FAILED)'}",
        f"  [{verdict('peak_rss_mb')}] peak RSS in use {f['peak_rss_mb']:.1f} MB (target <= 70; "
        f"the floor's: {f['floor_peak_rss_mb']:.1f} MB)",
        f"  [{verdict('idle_rss_mb')}] idle RSS {f['idle_rss_mb']:.1f} MB (target <= 45; "
        f"the floor's: {f['floor_idle_rss_mb']:.1f} MB)",
    ]


def targets(records: list[Record]) -> list[str]:
    """The issue's targets, checked on this run's tuned vs off figures."""
    by = {(r.scenario, r.mode, r.variant): r for r in records}
    lines = ["targets (tuned vs off, same run):"]

    def check(ok: bool, text: str, *, informative: bool = False) -> None:
        verdict = ("MET" if ok else "MISSED") if informative else ("PASS" if ok else "FAIL")
        lines.append(f"  [{verdict}] {text}")

    for variant in ("c=1", "c=8"):
        t, o = by.get((2, "tuned", variant)), by.get((2, "off", variant))
        if t and o:
            ratio = t.p50_ms / o.p50_ms if o.p50_ms else float("inf")
            note = "" if variant == "c=1" else ", informative"
            check(ratio <= 0.2,
                  f"scenario 2 {variant}: p50 {t.p50_ms:.0f} ms vs serial {o.p50_ms:.0f} ms "
                  f"(ratio {ratio:.2f}; target <= 0.20{note})",
                  informative=variant != "c=1")
    t, o = by.get((3, "tuned", "100 pods x 5")), by.get((3, "off", "100 pods x 5"))
    if t and o:
        pairs = t.extra["distinct_pairs"]
        worst = max(t.extra["per_round"])
        check(worst <= pairs, f"scenario 3: upstream calls per round {t.extra['per_round']} <= "
              f"{pairs} distinct (SA, secret) pairs (off: {o.extra['per_round']})")
        check(t.sts_calls <= SERVICE_ACCOUNTS,
              f"scenario 3: STS calls {t.sts_calls} <= {SERVICE_ACCOUNTS} (one per SA per "
              "credential lifetime)")
        reduction = o.upstream_calls / max(1, t.upstream_calls)
        check(reduction >= 20, f"scenario 3: {reduction:.0f}x fewer upstream calls than off")
    for mode in MODES:
        r = by.get((4, mode, "30% throttled"))
        if r:
            check(r.success_rate >= 0.999 or mode == "off",
                  f"scenario 4 {mode}: success {100 * r.success_rate:.2f}% (target >= 99.9% "
                  f"tuned), p99 {r.p99_ms:.0f} ms")
    for mode in MODES:
        r = by.get((5, mode, "10 s outage"))
        if r:
            calls = r.extra["calls_during_outage"]
            mounts = r.extra["mounts_during_outage"]
            bound = r.extra["retry_budget_tokens"] + 10 + 16  # budget + probes + in flight
            check(calls <= bound, f"scenario 5 {mode}: {calls} upstream calls during the outage "
                  f"for {mounts} mounts (bound: budget {r.extra['retry_budget_tokens']:g} + 1 "
                  f"probe/s + in-flight = {bound}); recovery {r.extra['recovery_s']} s")
    worst = max((r.peak_rss_mb for r in records), default=0.0)
    check(worst <= 120, f"peak RSS {worst:.1f} MB <= 120 MB in every scenario")
    return lines


if __name__ == "__main__":
    sys.exit(main())
