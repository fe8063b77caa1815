"""docs/helm-values.md is generated from values.yaml + values.schema.json and must be current."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

GENERATOR_NAME = "gen_values_doc.py"
DOC = Path(__file__).resolve().parents[2] / "docs" / "helm-values.md"


def _run(generator: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(generator), *args], capture_output=True,
                          text=True, timeout=60, check=False)


def _value_paths(values: dict[str, Any], schema: dict[str, Any], prefix: str = "") -> list[str]:
    """Independent walk: every key, descending where the schema types the children."""
    paths = []
    for key, value in values.items():
        path = f"{prefix}{key}"
        paths.append(path)
        child = schema["properties"][key]
        if isinstance(value, dict) and value and "properties" in child:
            paths += _value_paths(value, child, f"{path}.")
    return paths


def test_doc_is_up_to_date(helm_lib: ModuleType) -> None:
    proc = _run(helm_lib.CHART_DIR / GENERATOR_NAME, "--check")
    assert proc.returncode == 0, f"{proc.stderr}(regenerate with {GENERATOR_NAME})"


def test_doc_lists_every_value(helm_lib: ModuleType) -> None:
    values = yaml.safe_load((helm_lib.CHART_DIR / "values.yaml").read_text())
    schema = json.loads((helm_lib.CHART_DIR / "values.schema.json").read_text())
    rows = [line for line in DOC.read_text().splitlines() if line.startswith("| `")]
    documented = [row.split("`")[1] for row in rows]
    expected = _value_paths(values, schema)
    assert documented == expected
    for row in rows:
        description = row.rstrip(" |").rsplit(" | ", 1)[1]
        assert len(description) > 10, f"no real description: {row}"
    # Spot-check type and default columns against the sources.
    row = next(r for r in rows if r.startswith("| `linux.healthzPort` |"))
    assert "| integer or string | `8989` |" in row


def _chart_copy(helm_lib: ModuleType, tmp_path: Path) -> Path:
    chart = tmp_path / "chart"
    chart.mkdir()
    for name in (GENERATOR_NAME, "values.yaml", "values.schema.json"):
        shutil.copy2(helm_lib.CHART_DIR / name, chart / name)
    return chart


def _add_value(chart: Path, text: str, typed: bool) -> None:
    with (chart / "values.yaml").open("a") as handle:
        handle.write(text)
    if typed:
        schema = json.loads((chart / "values.schema.json").read_text())
        schema["properties"]["newValue"] = {"type": "string"}
        (chart / "values.schema.json").write_text(json.dumps(schema))


def test_new_value_makes_the_doc_stale(helm_lib: ModuleType, tmp_path: Path) -> None:
    chart = _chart_copy(helm_lib, tmp_path)
    _add_value(chart, "\n# A new value.\nnewValue: x\n", typed=True)
    proc = _run(chart / GENERATOR_NAME, "--chart-dir", str(chart), "--output", str(DOC),
                "--check")
    assert proc.returncode == 1 and "stale" in proc.stderr


def test_uncommented_value_is_refused(helm_lib: ModuleType, tmp_path: Path) -> None:
    chart = _chart_copy(helm_lib, tmp_path)
    _add_value(chart, "\nnewValue: x\n", typed=True)
    proc = _run(chart / GENERATOR_NAME, "--chart-dir", str(chart), "--output",
                str(tmp_path / "out.md"))
    assert proc.returncode == 2 and "newValue: add a comment" in proc.stderr


def test_untyped_value_is_refused(helm_lib: ModuleType, tmp_path: Path) -> None:
    chart = _chart_copy(helm_lib, tmp_path)
    _add_value(chart, "\n# A new value.\nnewValue: x\n", typed=False)
    proc = _run(chart / GENERATOR_NAME, "--chart-dir", str(chart), "--output",
                str(tmp_path / "out.md"))
    assert proc.returncode == 2 and "newValue: in values.yaml but not typed" in proc.stderr
