#!/usr/bin/env python3
"""The project's two entry points, usable on a fresh clone with only Python 3.11+:

    python3 tasks.py test    # create/reuse .venv, install, run lint, type checks and the tests
    python3 tasks.py demo    # create/reuse .venv, install, run the whole job against the emulator
    python3 tasks.py setup   # only create/reuse .venv and install (what test and demo do first)
    python3 tasks.py lock    # regenerate requirements/*.lock from pyproject.toml (needs PyPI)
    python3 tasks.py image   # build the container image with buildah (docs/installation.md)

Standard library only: this file runs before anything is installed.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"
STAMP = VENV / ".installed"
# promtool and prometheus for the monitoring tests (tests/chart/monitoring.py looks here).
PROMETHEUS_TOOLS = ROOT / ".tools" / "prometheus"


def _install_inputs() -> str:
    digest = hashlib.sha256()
    inputs = [ROOT / "pyproject.toml", ROOT / "tests/plugins/ack-test-backend/pyproject.toml"]
    example = ROOT / "examples" / "plugins" / "oosparam"
    inputs += [example / "pyproject.toml", *sorted(example.glob("ack_oosparam/*.py"))]
    for path in inputs:
        if path.exists():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def ensure_env() -> None:
    """Create .venv and install the project (with test extras) when inputs changed."""
    if sys.version_info < (3, 11):  # noqa: UP036 - this file runs before the venv exists
        sys.exit("Python 3.11 or newer is required")
    if not PY.exists():
        print("creating .venv ...", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    wanted = _install_inputs()
    if STAMP.exists() and STAMP.read_text() == wanted:
        return
    # A first install downloads about 150 packages: a few minutes. pip prints one
    # "Collecting ..." line per package so the wait shows progress; -q would hide it.
    pip = [str(PY), "-m", "pip", "install", "--disable-pip-version-check", "--progress-bar", "off"]
    steps = [
        ("pip itself", [*pip, "-q", "--upgrade", "pip"]),
        ("the provider and its test tools (first run: a few minutes)",
         [*pip, "-e", f"{ROOT}[test]"]),
        # A test-only backend, installed through a real entry point.
        ("the test backend plugin",
         [*pip, "-q", "-e", str(ROOT / "tests" / "plugins" / "ack-test-backend")]),
        # The example third-party plugin, built and installed from its own directory (not
        # editable, so its packaging is exercised as a user's `pip install` would).
        ("the example plugin", [*pip, "-q", "--force-reinstall", "--no-deps",
                                str(ROOT / "examples" / "plugins" / "oosparam")]),
    ]
    started = time.monotonic()
    for number, (what, command) in enumerate(steps, 1):
        print(f"installing into .venv [{number}/{len(steps)}]: {what} ...", flush=True)
        subprocess.run(command, check=True)
    print(f".venv ready in {time.monotonic() - started:.0f} s", flush=True)
    STAMP.write_text(wanted)


def ensure_prometheus_tools() -> None:
    """Extract promtool and prometheus from Debian's `prometheus` package into .tools/ (once).

    The tests run offline, so the download happens here, before them. No PyPI package ships
    them; Debian's does, and `apt-get download` fetches it without installing the server
    (verified against the signed archive). Where apt is missing or refuses, the tests that need
    them skip and say why.
    """
    names = ("promtool", "prometheus")
    if all((PROMETHEUS_TOOLS / name).exists() for name in names):
        return
    apt, dpkg_deb = shutil.which("apt-get"), shutil.which("dpkg-deb")
    if not apt or not dpkg_deb:
        print("note: no apt-get/dpkg-deb here; the Prometheus tests will skip", flush=True)
        return
    print("fetching promtool and prometheus (Debian package prometheus) into .tools/ ...",
          flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        download = [apt, "download", "-q", "prometheus"]
        done = subprocess.run(download, cwd=tmp, capture_output=True, text=True)
        if done.returncode != 0 and os.geteuid() == 0:  # a fresh machine: no package lists yet
            subprocess.run([apt, "update", "-q"], capture_output=True)
            done = subprocess.run(download, cwd=tmp, capture_output=True, text=True)
        debs = sorted(Path(tmp).glob("prometheus_*.deb"))
        if done.returncode != 0 or not debs:
            print(f"note: apt-get download prometheus failed ({done.stderr.strip()[-300:]}); "
                  "the Prometheus tests will skip", flush=True)
            return
        payload = subprocess.run([dpkg_deb, "--fsys-tarfile", str(debs[0])],
                                 capture_output=True, check=True).stdout
    PROMETHEUS_TOOLS.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(payload)) as tar:
        for name in names:
            member = tar.extractfile(f"./usr/bin/{name}")
            if member is None:
                print(f"note: the prometheus package holds no {name}; its tests will skip")
                continue
            partial = PROMETHEUS_TOOLS / f".{name}.{os.getpid()}.partial"
            partial.write_bytes(member.read())
            partial.chmod(0o755)
            partial.replace(PROMETHEUS_TOOLS / name)  # atomic: never half a binary


def run(*cmd: str, cwd: Path = ROOT) -> int:
    print("+", " ".join(cmd), flush=True)
    return subprocess.run(cmd, cwd=cwd).returncode


def typecheck_tree() -> Path:
    """A tree where `ack_secrets_provider/{core,backends,auth}` link to the source folders.

    mypy cannot follow setuptools' editable finder for our package-dir mapping; this mirror of
    the installed layout lets it check the sources in place.
    """
    tree = ROOT / ".tools" / "typecheck"
    package = tree / "ack_secrets_provider"
    package.mkdir(parents=True, exist_ok=True)
    for name in ("core", "backends", "auth"):
        link = package / name
        if not link.is_symlink():
            link.symlink_to(ROOT / name, target_is_directory=True)
    return tree


def test(args: list[str]) -> int:
    ensure_env()
    ensure_prometheus_tools()
    steps = [
        ([str(BIN / "ruff"), "check", "core", "backends", "auth", "tests", "charts", "examples",
          "docs", "bench", "tools", "tasks.py"],
         ROOT),
        ([str(BIN / "mypy"), "--config-file", str(ROOT / "pyproject.toml"),
          "-p", "ack_secrets_provider"], typecheck_tree()),
    ]
    for step, cwd in steps:
        code = run(*step, cwd=cwd)
        if code:
            return code
    return run(*offline_prefix(), str(PY), "-m", "pytest", *args)


def offline_prefix() -> list[str]:
    """Run the tests in a loopback-only network namespace where the machine allows it.

    A second guard beside the audit hook in tests/conftest.py: inside the namespace nothing but
    127.0.0.1 exists, so no test can reach the real cloud even through a subprocess.
    """
    unshare, ip = shutil.which("unshare"), shutil.which("ip")
    if os.environ.get("ACK_TESTS_ALLOW_HOST_NETWORK") or not unshare or not ip:
        return []
    probe = [unshare, "-rn", "sh", "-c", f"{ip} link set lo up"]
    if subprocess.run(probe, capture_output=True).returncode != 0:
        print("note: no network namespace here; relying on the test suite's audit hook")
        return []
    return [unshare, "-rn", "sh", "-c", f'{ip} link set lo up && exec "$@"', "offline"]


def demo(args: list[str]) -> int:
    ensure_env()
    return run(str(BIN / "ack-secrets-provider"), "demo", *args)


# The image's Python: the lock resolves for it on every platform (`--universal`: x86_64 and
# aarch64 alike, one hash per published file).
IMAGE_PYTHON = "3.11"


def lock(args: list[str]) -> int:
    """Pin the image's dependencies with hashes: runtime (pyproject.toml's [project]
    dependencies) and build tools ([build-system] requires). Existing pins are kept unless
    they no longer fit; pass `--upgrade` (or `--upgrade-package NAME`) to move them."""
    ensure_env()
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    tools = pyproject["project"]["optional-dependencies"]["lock"]
    subprocess.run([str(PY), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    *tools], check=True)
    compile_ = [str(BIN / "uv"), "pip", "compile", "--quiet", "--universal",
                "--python-version", IMAGE_PYTHON, "--generate-hashes",
                "--custom-compile-command", "python3 tasks.py lock", *args]
    code = run(*compile_, "pyproject.toml", "--output-file", "requirements/image.lock")
    if code:
        return code
    build_requires = "".join(f"{req}\n" for req in pyproject["build-system"]["requires"])
    print("+", *compile_, "- --output-file requirements/build.lock  # [build-system] requires")
    return subprocess.run([*compile_, "-", "--output-file", "requirements/build.lock"],
                          input=build_requires, text=True, cwd=ROOT).returncode


def setup(args: list[str]) -> int:
    ensure_env()
    return 0


def image(args: list[str]) -> int:
    return run(sys.executable, str(ROOT / "tools" / "image.py"), *args)


def main() -> int:
    commands = {"test": test, "demo": demo, "setup": setup, "lock": lock, "image": image}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        print(__doc__)
        return 2
    return commands[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
