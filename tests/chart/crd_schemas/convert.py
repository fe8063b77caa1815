#!/usr/bin/env python3
"""Turn a CustomResourceDefinition into the JSON Schema the chart tests validate against.

kubernetes-validate knows only built-in kinds, so the Prometheus Operator kinds the chart renders
(ServiceMonitor, PodMonitor, PrometheusRule) are checked against the schemas of their CRDs,
converted once with this script and committed beside it (tests never read outside the repo):

    python tests/chart/crd_schemas/convert.py monitoring.coreos.com_servicemonitors.yaml ...

The conversion keeps the structure and types of the CRD's openAPIV3Schema and makes it as
strict as the API server with kubectl's default (Strict) field validation: unknown fields are
errors (`additionalProperties: false` wherever the CRD lists properties and does not preserve
unknown fields). It drops descriptions (size) and CEL `x-kubernetes-validations`, which only an
API server evaluates; metadata gets the ObjectMeta fields a chart sets.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
METADATA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name"],
    "properties": {"name": {"type": "string", "minLength": 1}, "namespace": {"type": "string"},
                   "labels": STRING_MAP, "annotations": STRING_MAP},
}


def strict(node: Any) -> Any:
    if isinstance(node, list):
        return [strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "description" or key.startswith("x-kubernetes-"):
            continue
        if key == "nullable":
            continue
        out[key] = {k: strict(v) for k, v in value.items()} if key == "properties" else strict(
            value)
    if str(out.get("pattern", "")).startswith("^(?i)"):  # Go allows the flag there, Python not
        out["pattern"] = "(?i)^" + out["pattern"][len("^(?i)"):]
    if node.get("x-kubernetes-int-or-string"):
        out = {"anyOf": [{"type": "integer"}, {"type": "string"}]}
    elif node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if ("properties" in out and "additionalProperties" not in out
            and not node.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


def convert(crd_path: Path) -> Path:
    crd = yaml.safe_load(crd_path.read_text())
    spec = crd["spec"]
    version = next(v for v in spec["versions"] if v.get("storage"))
    schema = strict(version["schema"]["openAPIV3Schema"])
    api_version = f"{spec['group']}/{version['name']}"
    schema["properties"]["apiVersion"] = {"const": api_version}
    schema["properties"]["kind"] = {"const": spec["names"]["kind"]}
    schema["properties"]["metadata"] = METADATA
    schema["required"] = sorted({*schema.get("required", ()), "apiVersion", "kind", "metadata"})
    operator = crd["metadata"].get("annotations", {}).get("operator.prometheus.io/version", "")
    document = {"$schema": "http://json-schema.org/draft-07/schema#",
                "$comment": f"From the CRD {crd['metadata']['name']} (prometheus-operator "
                            f"{operator}) by convert.py; do not edit.",
                **schema}
    target = HERE / f"{spec['names']['kind']}.json"
    target.write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")
    return target


if __name__ == "__main__":
    for argument in sys.argv[1:]:
        print(convert(Path(argument)))
