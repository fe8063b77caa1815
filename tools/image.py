#!/usr/bin/env python3
"""Build the provider's container image with buildah (no daemon), for `python3 tasks.py image`.

    python3 tasks.py image                      # FROM python:3.11-slim-bookworm (a registry)
    python3 tasks.py image --base python:3.11-slim-bookworm@sha256:<digest>
    python3 tasks.py image --standin-base       # FROM a base assembled from Debian packages
    python3 tasks.py image --standin-base --if-possible   # CI: say why not instead of failing

The stand-in base is for machines that reach Debian's archive but no container registry: a
minimal Debian bookworm with its python3 (3.11) and pip, made by mmdebstrap, in the shape of the
official image (pip installed as a normal package, no EXTERNALLY-MANAGED marker).

The result lands in .tools/image/ for tests/chart/test_image.py, which runs it offline:
`rootfs.tar` (the image's file system), `config.json` (its OCI configuration) and `build.json`
(what was built from which inputs, and how long each step took). Where the machine cannot build
(`--if-possible`), `unavailable.txt` says why, and the test skips with that reason.

Standard library only, like tasks.py.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / ".tools" / "image"
DEFAULT_BASE = "python:3.11-slim-bookworm"
STANDIN_BASE = "localhost/python-standin:3.11-bookworm"
# What the Dockerfile's build context sends (.dockerignore) and what chooses the packages.
INPUTS = ("Dockerfile", ".dockerignore", "requirements", "pyproject.toml", "README.md", "LICENSE",
          "core", "backends", "auth")
# buildah's chroot isolation needs no OCI runtime and no daemon; RUN steps share the host's
# network, which the build needs for PyPI.
BUILDAH = ("buildah", "--log-level", "error")
ISOLATION = ("--isolation", "chroot")
DEBIAN_SOURCES = ("deb http://deb.debian.org/debian bookworm main",
                  "deb http://deb.debian.org/debian-security bookworm-security main")
# What the provider uses of the official slim image: Python, /etc/services, zone data and the
# C++ runtime that grpcio's wheels link against. Unpacked only (`--variant=extract`: no
# maintainer scripts, no rest of a Debian system), which takes a third of a full install's time;
# pip in the build trusts the host's CA bundle (below), so the base needs none of its own.
STANDIN_PACKAGES = "dash,python3,python3-pip-whl,netbase,tzdata,libstdc++6"
# Run by the host's shell once the packages are unpacked, with the root as $1: install Debian's
# pip wheel inside it as an ordinary package (so the image build can `pip uninstall` it, as with
# the official image), and drop the marker that makes Debian's Python refuse pip installs.
STANDIN_HOOK = (
    'wheel=$(cd "$1/usr/share/python-wheels" && echo pip-*.whl)'
    ' && chroot "$1" python3 "/usr/share/python-wheels/$wheel/pip" install --quiet --no-index'
    ' --no-cache-dir --root-user-action=ignore --break-system-packages'
    ' "/usr/share/python-wheels/$wheel"'
    ' && rm "$1/usr/lib/python3.11/EXTERNALLY-MANAGED"'
)


def inputs_digest() -> str:
    """sha256 over the build inputs' paths and contents (caches and bytecode excluded)."""
    digest = hashlib.sha256()
    for name in INPUTS:
        path = ROOT / name
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            if "__pycache__" in file.parts or file.suffix == ".pyc":
                continue
            digest.update(file.relative_to(ROOT).as_posix().encode() + b"\0")
            digest.update(file.read_bytes() + b"\0")
    return digest.hexdigest()


def missing_tools(standin: bool) -> str | None:
    needed = ["buildah", "tar"] + (["mmdebstrap"] if standin else [])
    missing = [tool for tool in needed if shutil.which(tool) is None]
    if missing:
        return (f"{' and '.join(missing)} not installed (Debian: apt-get install "
                f"{' '.join(missing)}); .ci/run installs them where it runs as root")
    if os.geteuid() != 0:
        return "building the image here needs root (buildah's chroot isolation, mmdebstrap)"
    return None


def sh(*command: str, capture: bool = False) -> str:
    """Run a command, failing on error; its output when captured."""
    print("+", " ".join(command), flush=True)
    proc = subprocess.run(command, check=True, text=True, capture_output=capture)
    return proc.stdout.strip() if capture else ""


def build_standin_base(work: Path) -> None:
    """A python:3.11-slim look-alike from Debian packages, as STANDIN_BASE in buildah."""
    rootfs = work / "standin-base.tar"
    sh("mmdebstrap", "--quiet", "--variant=extract", f"--include={STANDIN_PACKAGES}",
       "--dpkgopt=path-exclude=/usr/share/doc/*", "--dpkgopt=path-exclude=/usr/share/man/*",
       "--dpkgopt=path-exclude=/usr/share/locale/*", f"--extract-hook={STANDIN_HOOK}",
       "bookworm", str(rootfs), *DEBIAN_SOURCES)
    container = sh(*BUILDAH, "from", "scratch", capture=True)
    try:
        sh(*BUILDAH, "add", container, str(rootfs), "/")
        sh(*BUILDAH, "config", "--env", "PATH=/usr/local/bin:/usr/bin:/bin", "--env",
           "LANG=C.UTF-8", "--cmd", "python3", container)
        sh(*BUILDAH, "commit", "--quiet", "--rm", container, STANDIN_BASE)
    except BaseException:
        subprocess.run([*BUILDAH, "rm", container], check=False)
        raise
    finally:
        rootfs.unlink(missing_ok=True)


def git(*args: str) -> str:
    proc = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else ""


def source_url() -> str:
    """The repository's public address for the source label: the `origin` remote if it is one."""
    url = git("remote", "get-url", "origin")
    return url if url.startswith("https://") else ""


def image_id(name: str) -> str:
    proc = subprocess.run([*BUILDAH, "images", "--quiet", "--no-trunc", name],
                          capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else ""


def build(base: str, tag: str, standin: bool) -> dict[str, object]:
    # The images this build replaces, removed once it succeeds (each is some 200 MB).
    replaced = {image_id(tag), image_id(STANDIN_BASE) if standin else ""} - {""}
    OUT.mkdir(parents=True, exist_ok=True)
    digest = inputs_digest()  # before the build reads them, so later edits make it stale
    seconds: dict[str, float] = {}
    started = time.monotonic()
    if standin:
        build_standin_base(OUT)
        base = STANDIN_BASE
        seconds["standin_base"] = round(time.monotonic() - started, 1)
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    revision = git("rev-parse", "HEAD")
    if git("status", "--porcelain", "--", *INPUTS):
        revision += "-dirty"
    build_args = {"PYTHON_IMAGE": base, "VERSION": version, "REVISION": revision,
                  "SOURCE": source_url()}
    volumes = []
    host_ca = Path("/etc/ssl/certs/ca-certificates.crt")
    if host_ca.exists():
        # pip in the build trusts what the host trusts (a TLS-intercepting egress proxy, and the
        # stand-in base, which has no CA bundle of its own); only RUN steps see this mount, the
        # image does not keep it.
        volumes = ["--volume", f"{host_ca}:{host_ca}:ro"]
    step = time.monotonic()
    sh(*BUILDAH, "build", *ISOLATION, "--pull=missing" if not standin else "--pull=never",
       *volumes, *[f"--build-arg={k}={v}" for k, v in build_args.items()],
       "--tag", tag, "--file", str(ROOT / "Dockerfile"), str(ROOT))
    seconds["build"] = round(time.monotonic() - step, 1)
    step = time.monotonic()
    export(tag)
    seconds["export"] = round(time.monotonic() - step, 1)
    seconds["total"] = round(time.monotonic() - started, 1)
    for old in replaced - {image_id(tag), image_id(STANDIN_BASE)}:
        subprocess.run([*BUILDAH, "rmi", old], check=False, capture_output=True)
    record = {"image": tag, "base": base, "standin_base": standin, "inputs": digest,
              "build_args": build_args, "seconds": seconds}
    (OUT / "build.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def export(tag: str) -> None:
    """The image's file system as one tar and its OCI configuration, for the offline test."""
    inspect = json.loads(sh(*BUILDAH, "inspect", "--type", "image", tag, capture=True))
    (OUT / "config.json").write_text(json.dumps(inspect["OCIv1"], indent=2) + "\n")
    container = sh(*BUILDAH, "from", "--pull=never", tag, capture=True)
    try:
        mount = sh(*BUILDAH, "mount", container, capture=True)
        sh("tar", "--create", "--file", str(OUT / "rootfs.tar"), "--numeric-owner",
           "--directory", mount, ".")
    finally:
        subprocess.run([*BUILDAH, "rm", container], check=False, capture_output=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default=DEFAULT_BASE,
                        help="base image, pinnable by digest (default: %(default)s)")
    parser.add_argument("--standin-base", action="store_true",
                        help="assemble the base from Debian packages instead of pulling it")
    parser.add_argument("--tag", default="localhost/csi-secrets-store-provider-alibabacloud:dev",
                        help="name of the built image (default: %(default)s)")
    parser.add_argument("--if-possible", action="store_true",
                        help="where the machine cannot build, record why and exit 0")
    args = parser.parse_args()
    for stale in ("build.json", "unavailable.txt", "config.json", "rootfs.tar"):
        (OUT / stale).unlink(missing_ok=True)
    reason = missing_tools(args.standin_base)
    if reason:
        if not args.if_possible:
            print(f"cannot build the image here: {reason}", file=sys.stderr)
            return 1
        OUT.mkdir(parents=True, exist_ok=True)
        (OUT / "unavailable.txt").write_text(reason + "\n")
        print(f"image not built: {reason}")
        return 0
    record = build(args.base, args.tag, args.standin_base)
    print(f"built {record['image']} from {record['base']}: {record['seconds']} (seconds)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
