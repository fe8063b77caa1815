"""Fixtures for the chart tests: the real helm binary and the chart staged for offline use.

The helper module ``helm.py`` beside this file is loaded by path (tests/ is not a package and
pytest runs with --import-mode=importlib) and handed to tests through fixtures only.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from helm import ChartUnderTest


def _load_helper(filename: str = "helm.py") -> ModuleType:
    name = f"ack_chart_test_{Path(filename).stem}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(filename))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses resolve their module through sys.modules
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def helm_lib() -> ModuleType:
    """The helper module (constants such as CHART_DIR, K8S_VERSIONS, seed_values_files)."""
    return _load_helper()


@pytest.fixture(scope="session")
def chart(helm_lib: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> ChartUnderTest:
    """The chart copied to a temp dir with the generated placeholder driver subchart."""
    scratch = tmp_path_factory.mktemp("helm")
    helm = helm_lib.Helm(helm_lib.helm_binary(), scratch / "home")
    staged = helm_lib.stage_chart(scratch / "chart")
    result: ChartUnderTest = helm_lib.ChartUnderTest(helm, staged)
    return result


@pytest.fixture(scope="session")
def seed_values(helm_lib: ModuleType) -> dict[str, Path]:
    """The official chart users' values files (tests/chart/official_v0_6_0) by short name."""
    files: list[Path] = helm_lib.seed_values_files()
    return {p.stem.removeprefix("seed-helm-values-"): p for p in files}


@pytest.fixture(scope="session")
def monitoring_lib() -> ModuleType:
    """The monitoring helpers (rules, dashboard, PromQL, CRD schemas): ``monitoring.py``."""
    return _load_helper("monitoring.py")


def _prometheus_tool(monitoring_lib: ModuleType, name: str) -> Path:
    binary: Path | None = monitoring_lib.prometheus_tool(name)
    if binary is None:
        pytest.skip(f"{name} is not installed and could not be fetched: `python3 tasks.py test` "
                    "extracts it from Debian's prometheus package (needs apt-get), or install "
                    "that package")
    return binary


@pytest.fixture(scope="session")
def promtool(monitoring_lib: ModuleType) -> Path:
    """The real promtool; `python3 tasks.py test` fetches it before the (offline) tests."""
    return _prometheus_tool(monitoring_lib, "promtool")


@pytest.fixture(scope="session")
def prometheus(monitoring_lib: ModuleType) -> Path:
    """The real Prometheus server binary, fetched with promtool."""
    return _prometheus_tool(monitoring_lib, "prometheus")
