"""`ack-secrets-provider lint FILE...`: check SecretProviderClasses offline, as the provider would.

The checks are the provider's own: the same parser (`core.mount.spec`, which reports every
problem of every object and the cross-object checks over the valid ones), the same installed
backends and their validators. It adds what only a manifest shows: the apiVersion, a `kind` or
`spec.provider` that is nearly right (the driver would never call this provider), parameters
that are not strings (the API server refuses them), `secretObjects` entries that name no mounted
file (the driver's sync to a Kubernetes Secret fails on those), and objects whose region nothing
in the SecretProviderClass gives.

Exit status: 0 clean (warnings allowed), 1 when any error was found or there was nothing to check
(no alibabacloud SecretProviderClass at all), 2 when a file cannot be read.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import yaml

from ack_secrets_provider.core.commands.lint_official import official_provider_warnings
from ack_secrets_provider.core.commands.manifests import (
    API_VERSIONS,
    KIND,
    PROVIDER,
    Document,
    ManifestError,
    documents,
    read_text,
)
from ack_secrets_provider.core.commands.output import Output, plural, print_json
from ack_secrets_provider.core.errors import InvalidArgument
from ack_secrets_provider.core.mount import yaml_text
from ack_secrets_provider.core.mount.limits import RequestLimits
from ack_secrets_provider.core.mount.paths import PathTranslation, parse_path_translation
from ack_secrets_provider.core.mount.spec import (
    ATTR_OBJECTS,
    ATTR_PATH_TRANSLATION,
    ATTR_REGION,
    PARAMETERS,
    ObjectSpec,
    ObjectTypes,
    check_objects,
    parse_mount_request,
)

ERROR, WARNING, NOTE = "error", "warning", "note"
EXIT_OK, EXIT_PROBLEMS, EXIT_UNREADABLE = 0, 1, 2

_OBJECT = re.compile(r"\bobject #(\d+)")
_FIELD = re.compile(r"\b(?:field|parameter) '?([A-Za-z][\w.-]*)")


@dataclass(frozen=True)
class Problem:
    file: str
    document: int | None
    name: str | None
    severity: str
    message: str
    object: int | None = None
    field: str | None = None
    #: position in a `kind: List` document
    item: int | None = None

    @classmethod
    def of(cls, file: str, doc: Document | None, severity: str, message: str) -> Problem:
        obj = _OBJECT.search(message)
        fld = _FIELD.search(message)
        return cls(file, doc.index if doc else None, doc.name if doc else None, severity,
                   message, int(obj.group(1)) if obj else None, fld.group(1) if fld else None,
                   doc.item if doc else None)


@dataclass
class Report:
    problems: list[Problem]
    checked: int = 0
    unreadable: int = 0

    def count(self, severity: str) -> int:
        return sum(1 for p in self.problems if p.severity == severity)


# -- checks of one SecretProviderClass -------------------------------------------------------


def _renumber(message: str, index: int) -> str:
    """A message about the only object of a one-object list, renamed to its real position."""
    return re.sub(r"^object #1\b", f"object #{index + 1}", message, count=1)


def _objects_leniently(text: str) -> Any:
    """The objects as the parser reads them (merge keys applied, plain nulls None, bounded), or,
    when that fails on a duplicated field or a bad alias, as plain text maps so that the other
    objects are still checked; None when neither can read them."""
    limits = RequestLimits()
    try:
        return yaml_text.load(text, yaml_text.YamlBounds(limits.yaml_nodes, limits.yaml_depth))
    except (yaml.YAMLError, yaml_text.YamlTooLarge):
        return None
    except yaml_text.YamlProblem:
        pass
    try:
        return yaml.load(text, Loader=yaml.BaseLoader)  # noqa: S506 - strings only
    except (yaml.YAMLError, RecursionError):  # PyYAML recurses once per level
        return None


def object_problems(
    text: str,
    translation: PathTranslation,
    types: ObjectTypes,
) -> tuple[list[str], tuple[ObjectSpec, ...]]:
    """Every problem of the `objects` parameter, and the objects that are valid."""
    try:
        specs, errors = check_objects(text, translation, types)
    except InvalidArgument as exc:  # the list itself cannot be read as the provider reads it
        problems = list(exc.problems)
    else:
        return [problem for error in errors for problem in error.problems], specs
    # Such as a field given twice: read leniently, the objects are still checked one by one.
    items = _objects_leniently(text)
    for index, item in enumerate(items if isinstance(items, list) else []):
        _, errors = check_objects(yaml.safe_dump([item]), translation, types)
        problems += [_renumber(problem, index) for error in errors for problem in error.problems]
    return problems, ()


def near_miss(value: object, wanted: str, cutoff: float) -> bool:
    """`value` is probably a misspelling of `wanted` (letter case ignored)."""
    if not isinstance(value, str) or value == wanted:
        return False
    ratio = difflib.SequenceMatcher(None, value.strip().lower(), wanted.lower()).ratio()
    return ratio >= cutoff


def _provider_near_miss(provider: object) -> bool:
    """`alibaba`, `alicloud`, `aliyun`, `AlibabaCloud`: meant for this provider."""
    return near_miss(provider, PROVIDER, 0.6) or (
        isinstance(provider, str) and provider.strip().lower().startswith("ali"))


def _region_problem(parameters: Mapping[str, Any], specs: Sequence[ObjectSpec]) -> str | None:
    """A warning when objects depend on a region that the SecretProviderClass does not give."""
    if isinstance(parameters.get(ATTR_REGION), str) and parameters[ATTR_REGION].strip():
        return None
    needing = [spec for spec in specs
               if not any(name.endswith("Endpoint") for name in spec.fields)
               and not spec.object_name.startswith("acs:")]
    if not needing:
        return None
    which = ", ".join(f"#{spec.index + 1}" for spec in needing[:5])
    which += ", ..." if len(needing) > 5 else ""
    return (f"parameter region is not set and object(s) {which} name no endpoint or ARN, so "
            "the provider's --region (Helm value regionId) or, without it, the node's region "
            "discovery decides where they are read; set region (for example region: "
            "\"cn-hangzhou\") to make the SecretProviderClass say it")


def _not_a_string(key: str, value: object) -> str:
    if key == ATTR_OBJECTS and isinstance(value, list):
        return ("parameter objects must be a string that holds the YAML list: write "
                "'objects: |' and indent the list under it")
    kind = {bool: "a boolean", int: "a number", float: "a number", type(None): "empty",
            dict: "a map", list: "a list"}.get(type(value), type(value).__name__)
    shown = json.dumps(value) if isinstance(value, bool | int | float) else str(value)
    fix = (f" such as {key}: \"{'true' if value else 'false'}\"" if isinstance(value, bool)
           else f" such as {key}: \"{shown}\"" if isinstance(value, int | float) else "")
    return (f"parameter {key} is {kind}, but SecretProviderClass parameters must be strings "
            f"(the API server refuses the manifest); quote the value{fix}")


def _parameter_problems(parameters: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    errors, warnings = [], []
    for key, value in parameters.items():
        if not isinstance(value, str):
            errors.append(_not_a_string(str(key), value))
        elif key not in PARAMETERS:
            match = difflib.get_close_matches(str(key), list(PARAMETERS), n=1, cutoff=0.75)
            if match:
                warnings.append(f"parameter {key} is not read by the provider; did you mean "
                                f"{match[0]}?")
    for key in PARAMETERS:
        value = parameters.get(key)
        if key == ATTR_OBJECTS or not isinstance(value, str):
            continue
        try:  # each parameter alone, so one mistake does not hide another
            parse_mount_request(json.dumps({key: value}), "null", "")
        except InvalidArgument as exc:
            errors.append(exc.message)
    return errors, warnings


def _secret_object_problems(spec: Mapping[str, Any], files: set[str]) -> list[str]:
    """`secretObjects[].data[].objectName` must name a file of this mount."""
    problems = []
    entries = spec.get("secretObjects") or []
    if not isinstance(entries, list):
        return ["spec.secretObjects must be a list"]
    shown = ", ".join(sorted(files)) or "none"
    for i, entry in enumerate(entries):
        data = entry.get("data") if isinstance(entry, dict) else None
        secret = entry.get("secretName") if isinstance(entry, dict) else None
        for j, item in enumerate(data if isinstance(data, list) else []):
            name = item.get("objectName") if isinstance(item, dict) else None
            if isinstance(name, str) and name not in files:
                problems.append(
                    f"secretObjects[{i}] ({secret!s}) data[{j}]: field objectName {name!r} is "
                    f"not a file of this mount, so the driver cannot sync it; use one of the "
                    f"mounted file names: {shown} (the file name is objectAlias, or objectName "
                    "with '/' translated)"
                )
    return problems


def check_spc(
    doc: Document,
    types: ObjectTypes,
) -> tuple[list[str], list[str]]:
    """Errors and warnings of one alibabacloud SecretProviderClass document."""
    data: dict[str, Any] = doc.data
    errors: list[str] = []
    warnings: list[str] = []
    api_version = data.get("apiVersion")
    if api_version not in API_VERSIONS:
        errors.append(f"apiVersion {api_version!r} is not a SecretProviderClass version; use "
                      f"{API_VERSIONS[0]} (or {API_VERSIONS[1]})")
    if doc.name is None:
        errors.append("metadata.name is required; pods refer to the SecretProviderClass by it")
    spec = data.get("spec")
    spec = spec if isinstance(spec, dict) else {}
    parameters = spec.get("parameters")
    if parameters is None:
        errors.append("spec.parameters is missing; add the parameter objects with the list of "
                      "objects to mount")
        return errors, warnings
    if not isinstance(parameters, dict):
        errors.append("spec.parameters must be a map of strings, such as 'objects: |'")
        return errors, warnings
    param_errors, param_warnings = _parameter_problems(parameters)
    errors += param_errors
    warnings += param_warnings
    objects = parameters.get(ATTR_OBJECTS)
    if objects is None or (isinstance(objects, str) and not objects.strip()):
        warnings.append("parameter objects is empty: this SecretProviderClass mounts nothing")
        return errors, warnings
    if not isinstance(objects, str):
        return errors, warnings  # reported above as not a string
    translation_text = parameters.get(ATTR_PATH_TRANSLATION)
    try:
        translation = parse_path_translation(
            translation_text if isinstance(translation_text, str) else None)
    except ValueError:
        translation = parse_path_translation(None)  # reported by _parameter_problems
    object_errors, specs = object_problems(objects, translation, types)
    errors += object_errors
    warnings += [warning for s in specs for warning in s.warnings]
    if not object_errors:  # a failed object's file name is unknown: no false "not a file"
        files = {s.file_name for s in specs} | {e.file_name for s in specs for e in s.jmes_path}
        errors += _secret_object_problems(spec, files)
        warnings += official_provider_warnings(parameters, specs)
    region = _region_problem(parameters, specs)
    if region:
        warnings.append(region)
    return errors, warnings


# -- files -------------------------------------------------------------------------------------


def lint_text(
    text: str,
    file: str,
    types: ObjectTypes,
    report: Report,
) -> None:
    seen: Document | None = None
    try:
        for doc in documents(text):
            seen = doc
            if not isinstance(doc.data, dict):
                report.problems.append(Problem.of(
                    file, doc, NOTE, "skipped: not a Kubernetes object (a map)"))
                continue
            errors = []
            if doc.kind != KIND and near_miss(doc.kind, KIND, 0.8):
                errors.append(f"kind {doc.kind!r} is not a Kubernetes kind; did you mean {KIND}? "
                              "(the API server refuses it)")
            elif doc.kind != KIND:
                report.problems.append(Problem.of(
                    file, doc, NOTE, f"skipped: kind {doc.kind or '(none)'} is not {KIND}"))
                continue
            if doc.provider != PROVIDER and _provider_near_miss(doc.provider):
                errors.append(f"spec.provider {doc.provider!r} is not a provider name; did you "
                              f"mean {PROVIDER}? (the driver would look for a provider called "
                              f"{doc.provider!r} and fail every mount with 'provider not found')")
            elif doc.provider != PROVIDER:
                report.problems.append(Problem.of(
                    file, doc, NOTE,
                    f"skipped: spec.provider is {doc.provider!r}, not {PROVIDER!r}"))
                continue
            report.checked += 1
            spc_errors, warnings = check_spc(doc, types)
            errors += spc_errors
            report.problems += [Problem.of(file, doc, ERROR, m) for m in errors]
            report.problems += [Problem.of(file, doc, WARNING, m) for m in warnings]
    except ManifestError as exc:
        index = exc.document or (seen.index + 1 if seen else 1)
        report.problems.append(Problem(file, index, None, ERROR, exc.message))


def lint_files(
    paths: Sequence[str],
    types: ObjectTypes,
) -> Report:
    report = Report([])
    names = []
    for path in paths:
        name = "<stdin>" if path == "-" else path
        names.append(name)
        try:
            text = read_text(path)
        except ManifestError as exc:
            report.unreadable += 1
            report.problems.append(Problem(name, None, None, ERROR, exc.message))
            continue
        lint_text(text, name, types, report)
    if report.checked == 0 and not report.unreadable and not report.count(ERROR):
        # Empty input, or only other kinds: passing would hide a wrong path or a failed pipe.
        skipped = report.count(NOTE)
        report.problems.append(Problem(
            ", ".join(names), None, None, ERROR,
            f"nothing to check: no SecretProviderClass with spec.provider {PROVIDER}"
            + (f" (only {plural(skipped, 'other document')})" if skipped else
               " (the input is empty)")
            + "; pass the files that hold them"))
    return report


def installed_backends() -> ObjectTypes:
    """What the backends installed here accept (as `serve` loads them)."""
    import os
    from types import MappingProxyType

    from ack_secrets_provider.core.plugins.host import BackendHost
    from ack_secrets_provider.core.settings import ProviderSettings

    host = BackendHost(ProviderSettings(environ=MappingProxyType(dict(os.environ))))
    host.load()
    return host.object_types()


# -- command -----------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE",
                        help="YAML files with one or more documents; - reads stdin")
    parser.add_argument("--format", choices=("text", "json"), default="text",
                        help="text: one line per problem; json: the counts and every problem "
                             "with file, document, object and field")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="print errors and warnings only (no notes, no summary)")


def _where(problem: Problem) -> str:
    parts = [problem.file]
    if problem.document is not None:
        doc = f"document {problem.document}"
        if problem.item is not None:
            doc += f", item {problem.item}"
        parts.append(f"{doc} ({problem.name})" if problem.name else doc)
    return ": ".join(parts)


def render(report: Report, out: Output, *, quiet: bool) -> None:
    colours = {ERROR: ("bold", "red"), WARNING: ("bold", "yellow"), NOTE: ("dim",)}
    for p in report.problems:
        if quiet and p.severity == NOTE:
            continue
        out.line(f"{out.style(_where(p), 'bold')}: {out.style(p.severity, *colours[p.severity])}"
                 f": {p.message}")
    if quiet:
        return
    errors, warnings = report.count(ERROR), report.count(WARNING)
    summary = (f"checked {plural(report.checked, 'SecretProviderClass', 'SecretProviderClasses')}"
               f": {plural(errors, 'error')}, {plural(warnings, 'warning')}")
    out.line(out.style(summary, "bold", "red" if errors else "green"))


def run(args: argparse.Namespace) -> int:
    report = lint_files(args.files, installed_backends())
    if args.format == "json":
        print_json({
            "checked": report.checked,
            "errors": report.count(ERROR),
            "warnings": report.count(WARNING),
            "problems": [asdict(p) for p in report.problems],
        })
    else:
        render(report, Output(), quiet=args.quiet)
    if report.unreadable:
        return EXIT_UNREADABLE
    return EXIT_PROBLEMS if report.count(ERROR) else EXIT_OK
