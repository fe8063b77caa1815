"""The built image, run as the chart runs it: read-only root, every capability dropped, uid 0.

`python3 tasks.py image` (tools/image.py) builds the image with buildah and leaves its file system
and OCI configuration in .tools/image/. Building needs PyPI (and Debian's archive for the
stand-in base) while the tests run offline, so `.ci/run` builds first and these tests check the
result: what it contains (exactly the lock), its labels, `version`, and `serve` becoming ready
with the chart's own arguments. They skip only where the machine could not build (the reason
`tasks.py image --if-possible` recorded); under CI a missing or outdated image fails.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from importlib.metadata import distributions
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import psutil
import pytest
from lockfile import IMAGE_LOCK, PROJECT, PYPROJECT, parse
from packaging.utils import canonicalize_name

from ack_secrets_provider.core.server.driver_client import ProviderClient

if TYPE_CHECKING:
    from helm import ChartUnderTest

ROOT = Path(__file__).resolve().parents[2]
BUILT = ROOT / ".tools" / "image"
PROVIDER_VOLUME = "/provider"  # the chart's mountPath of the providers directory

# Runs in a new user and mount namespace (root inside, like the chart's runAsUser 0): the
# chart's volume and the few device nodes every container runtime provides are bind-mounted,
# then the root is made read-only (readOnlyRootFilesystem), and DROP enters it.
JAIL = r"""
set -eu
root=$1 volume=$2 python=$3; shift 3
mount --bind "$root" "$root"
for dev in null zero random urandom; do mount --bind "/dev/$dev" "$root/dev/$dev"; done
mount --bind "$volume" "$root/provider"
mount -o remount,bind,ro "$root"
exec "$python" -c "$DROP" "$root" "$@"
"""
# capabilities.drop: [ALL] (an empty bounding set leaves uid 0 no capability after exec) and
# allowPrivilegeEscalation: false (no_new_privs); then exec the command inside the root.
DROP = """
import ctypes, os, sys
root, *command = sys.argv[1:]
last_cap = int(open("/proc/sys/kernel/cap_last_cap").read())
libc = ctypes.CDLL(None, use_errno=True)
os.chroot(root)
os.chdir("/")
for cap in range(last_cap + 1):
    assert libc.prctl(24, cap, 0, 0, 0) == 0  # PR_CAPBSET_DROP
assert libc.prctl(38, 1, 0, 0, 0) == 0  # PR_SET_NO_NEW_PRIVS
os.execvp(command[0], command)
"""


def _image_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ack_image_tool", ROOT / "tools" / "image.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _not_here(reason: str) -> None:
    if os.environ.get("CI"):  # .ci/run builds the image before the tests
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def built() -> dict[str, Any]:
    unavailable = BUILT / "unavailable.txt"
    if unavailable.exists():
        pytest.skip(f"this machine cannot build the image: {unavailable.read_text().strip()}")
    record_file = BUILT / "build.json"
    if not record_file.exists():
        _not_here("no image built: run `python3 tasks.py image --standin-base` first "
                  "(docs/installation.md)")
    record: dict[str, Any] = json.loads(record_file.read_text())
    if record["inputs"] != _image_tool().inputs_digest():
        _not_here("the built image is older than its sources: rerun `python3 tasks.py image`")
    return record


@pytest.fixture(scope="module")
def config(built: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((BUILT / "config.json").read_text())["config"]
    return result


@pytest.fixture(scope="module")
def rootfs(built: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    probe = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "true"],
                           capture_output=True, text=True, check=False)
    if probe.returncode:
        pytest.skip(f"no user and mount namespaces to run the image in: {probe.stderr.strip()}")
    root = tmp_path_factory.mktemp("rootfs")
    # Device nodes cannot be created without privileges; JAIL binds the host's instead.
    subprocess.run(["tar", "--extract", "--file", str(BUILT / "rootfs.tar"), "--directory",
                    str(root), "--no-same-owner", "--exclude=./dev/*"], check=True)
    for name in ("null", "zero", "random", "urandom"):
        (root / "dev" / name).touch()
    (root / PROVIDER_VOLUME.lstrip("/")).mkdir()  # the runtime creates volume mount points
    return root


def _jailed(rootfs: Path, volume: Path, command: list[str], config: dict[str, Any],
            env: dict[str, str] | None = None, **popen: Any) -> subprocess.Popen[str]:
    image_env = dict(item.split("=", 1) for item in config["Env"])
    return subprocess.Popen(
        ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", JAIL, "jail",
         str(rootfs), str(volume), sys.executable, *command],
        env={**image_env, **(env or {}), "DROP": DROP}, text=True, **popen)


def _run(rootfs: Path, tmp_path: Path, command: list[str],
         config: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    proc = _jailed(rootfs, tmp_path, command, config, stdout=subprocess.PIPE,
                   stderr=subprocess.PIPE)
    out, err = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(command, proc.returncode, out, err)


def _site_packages(rootfs: Path) -> list[Path]:
    return sorted(rootfs.glob("usr/local/lib/python3.*/*-packages")) + sorted(
        rootfs.glob("usr/lib/python3*/*-packages"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _get(url: str) -> tuple[int, str]:
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback, no proxy
    try:
        with direct.open(url, timeout=5) as response:
            return response.status, response.read().decode()
    except OSError as exc:
        return getattr(exc, "code", 0), str(exc)


def test_labels_describe_the_build(built: dict[str, Any], config: dict[str, Any]) -> None:
    labels = config["Labels"]
    project = PYPROJECT["project"]
    args = built["build_args"]
    assert labels["org.opencontainers.image.title"] == project["name"]
    assert labels["org.opencontainers.image.description"] == project["description"]
    assert labels["org.opencontainers.image.licenses"] == project["license"]
    assert labels["org.opencontainers.image.version"] == project["version"]
    assert len(labels["org.opencontainers.image.revision"].split("-")[0]) == 40
    assert labels["org.opencontainers.image.revision"] == args["REVISION"]
    assert labels["org.opencontainers.image.source"] == args["SOURCE"]
    assert labels["org.opencontainers.image.base.name"] == built["base"]


def test_installed_packages_are_exactly_the_lock(rootfs: Path) -> None:
    installed = {
        canonicalize_name(dist.metadata["Name"]): dist.version
        for dist in distributions(path=[str(path) for path in _site_packages(rootfs)])
    }
    locked = {name: str(pin.version) for name, pin in parse(IMAGE_LOCK.read_text()).items()
              if pin.applies_here()}
    assert installed.pop(canonicalize_name(PROJECT)) == PYPROJECT["project"]["version"]
    # nothing unlocked (no test extras, no pip/setuptools/wheel left from the build)
    assert installed == locked


def test_version_answers_on_a_read_only_root(rootfs: Path, config: dict[str, Any],
                                             tmp_path: Path) -> None:
    (entrypoint, _serve) = config["Entrypoint"]
    proc = _run(rootfs, tmp_path, [entrypoint, "version"], config)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].endswith(f" {PYPROJECT['project']['version']}")
    pins = parse(IMAGE_LOCK.read_text())
    reported = dict(line.split()[:2] for line in lines[2:] if line.split()[0] in pins)
    # the SDK versions it reports are the locked ones
    assert reported and all(str(pins[n].version) == v for n, v in reported.items()), reported
    # the negative case: the root really is read-only, even for uid 0
    write = _run(rootfs, tmp_path, ["python3", "-c", "open('/usr/local/bin/x', 'w')"], config)
    assert "Read-only file system" in write.stderr


@pytest.fixture
def chart_container(chart: ChartUnderTest) -> dict[str, Any]:
    # The defaults plus a region: without one the provider asks the instance metadata service,
    # which exists only on Alibaba Cloud (the bundled driver, whose image names need the region
    # too, plays no part here).
    values = {"regionId": "cn-hangzhou", "secrets-store-csi-driver": {"install": False}}
    pod = chart.template(values=values).one("DaemonSet")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    result: dict[str, Any] = container
    return result


@pytest.fixture
def serving(rootfs: Path, config: dict[str, Any], chart_container: dict[str, Any],
            tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], dict[str, int], list[str]]]:
    """`serve` with the chart's arguments (ports moved to free ones)."""
    security = chart_container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True and security["runAsUser"] == 0
    assert security["capabilities"]["drop"] == ["ALL"]
    assert [m["mountPath"] for m in chart_container["volumeMounts"]] == [PROVIDER_VOLUME]
    env = {"NODE_NAME": "node-1", "POD_IP": "127.0.0.1"}  # the chart's fieldRefs
    assert {e["name"] for e in chart_container.get("env", [])} <= set(env)
    ports = {"--healthz-port": _free_port(), "--metrics-port": _free_port()}
    args = []
    for arg in chart_container["args"]:
        flag = arg.split("=")[0]
        arg = f"{flag}={ports[flag]}" if flag in ports else arg
        # Kubernetes expands $(VAR) in args from the container's environment
        args.append(re.sub(r"\$\((\w+)\)", lambda m: env.get(m[1], m[0]), arg))
    log = (tmp_path / "provider.log").open("w+")
    proc = _jailed(rootfs, tmp_path, [*config["Entrypoint"], *args], config, env,
                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc, ports, args
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.seek(0)
        print(log.read())  # shown by pytest when the test fails


def test_serve_becomes_ready_on_a_read_only_root_as_the_chart_runs_it(
        serving: tuple[subprocess.Popen[str], dict[str, int], list[str]], tmp_path: Path) -> None:
    proc, ports, args = serving
    sock = tmp_path / "alibabacloud.sock"
    health = f"http://127.0.0.1:{ports['--healthz-port']}"
    deadline = time.monotonic() + 60
    while _get(f"{health}/readyz")[0] != 200:
        assert proc.poll() is None, "the provider exited"
        assert time.monotonic() < deadline, "not ready within 60 s"
        time.sleep(0.2)
    assert sock.is_socket()
    assert _get(f"{health}/healthz")[0] == 200
    status, metrics = _get(f"http://127.0.0.1:{ports['--metrics-port']}/metrics")
    assert status == 200 and "python_info" in metrics
    client = ProviderClient(sock)
    assert client.version().version == "v1alpha1"
    client.close()
    # unshare, sh and DROP each exec the next: the process started is the server itself
    assert psutil.Process(proc.pid).cmdline()[-len(args):] == args
    status_lines = dict(line.split(":\t", 1) for line in
                        Path(f"/proc/{proc.pid}/status").read_text().splitlines())
    assert int(status_lines["CapEff"], 16) == 0 and status_lines["NoNewPrivs"] == "1"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    assert not sock.exists()

