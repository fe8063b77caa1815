"""SecretProviderClass parsing: a pure, total function from the driver's strings to frozen data.

`parse_mount_request` either returns a `MountRequest` or raises `InvalidArgument` whose message
names the object and the field and says how to fix it. It never performs I/O. Every problem is
reported, not only the first: each parameter, each object and each field of an object is checked
on its own and the problems are combined into one error (`errors.combined`, each one in
`.problems`); the checks across objects (two objects writing one file) run over the objects that
are valid. (A problem of the `objects` text as a whole, such as its size or a YAML error, stops
there: nothing else can be read.)

The `objects` YAML is read by `core.mount.yaml_text`, so every scalar keeps exactly the text the
user wrote: `objectAlias: 0755` is the file `0755` and `objectAlias: no` is the file `no` (the
existing provider's YAML 1.1 typing turns them into `493` and `false`); merge keys (`<<: *base`)
and a plain `null`/`~` mean what they mean there. Its size and what it expands to are bounded by
`RequestLimits` before any other work.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType
from typing import Any, ClassVar, TypeVar

import yaml

from ack_secrets_provider.core.errors import InvalidArgument, combined
from ack_secrets_provider.core.mount import yaml_text
from ack_secrets_provider.core.mount.arn import REGION_PATTERN
from ack_secrets_provider.core.mount.limits import RAISE, RequestLimits, beyond
from ack_secrets_provider.core.mount.paths import (
    PathTranslation,
    driver_path_problem,
    parse_driver_permission,
    parse_file_permission,
    parse_path_translation,
)

# Keys of the driver's attributes map.
ATTR_OBJECTS = "objects"
ATTR_REGION = "region"
ATTR_PATH_TRANSLATION = "pathTranslation"
ATTR_USE_POD_TOKEN = "usePodServiceAccountToken"
ATTR_SPC = "secretProviderClass"
ATTR_POD_NAME = "csi.storage.k8s.io/pod.name"
ATTR_POD_NAMESPACE = "csi.storage.k8s.io/pod.namespace"
ATTR_POD_UID = "csi.storage.k8s.io/pod.uid"
ATTR_SERVICE_ACCOUNT = "csi.storage.k8s.io/serviceAccount.name"
ATTR_SA_TOKENS = "csi.storage.k8s.io/serviceAccount.tokens"

#: SecretProviderClass parameters this provider reads (other attribute keys are ignored)
PARAMETERS: Mapping[str, str] = MappingProxyType(
    {
        ATTR_OBJECTS: "YAML list of the objects to mount",
        ATTR_REGION: "region id used for default endpoints (default: the provider's --region)",
        ATTR_PATH_TRANSLATION: (
            "character replacing '/' in file names; \"False\" keeps sub-directories"
        ),
        ATTR_USE_POD_TOKEN: (
            "\"true\": authenticate as the pod's own ServiceAccount (pod-level RRSA)"
        ),
    }
)

#: the object fields every backend shares, with a one-line meaning each (the docs and the error
#: messages use these); a backend adds fields of its own with `Backend.object_fields`
OBJECT_FIELDS: Mapping[str, str] = MappingProxyType(
    {
        "objectName": "secret or parameter name, or its ARN (required)",
        "objectType": "backend: the objectType of an installed backend (default: the provider's "
                      "default objectType)",
        "objectAlias": "file name (default: objectName, translated)",
        "objectVersion": "version to pin, in the backend's own form",
        "objectVersionLabel": "version label (stage) to read, for backends that have them",
        "jmesPath": "list of {path, objectAlias, filePermission}: one file per JSON expression",
        "crossAccountRoleArn": "RAM role to assume for this object on top of the resolved identity",
        "filePermission": "file mode for this object's file, octal such as \"0440\"",
    }
)

JMESPATH_FIELDS: Mapping[str, str] = MappingProxyType(
    {
        "path": "JMESPath expression evaluated on the JSON secret (required)",
        "objectAlias": "file name for the expression's result (required)",
        "filePermission": "file mode for this file, octal such as \"0440\"",
    }
)

#: lower-cased field name → field name, for `_canonical_keys` (built once, used every Mount)
_JMESPATH_FIELDS_BY_LOWER = {name.lower(): name for name in JMESPATH_FIELDS}

DEFAULT_LIMITS = RequestLimits()


@dataclass(frozen=True)
class JmesPathEntry:
    """One `jmesPath` entry: an expression and the file its result is written to."""

    path: str
    object_alias: str
    file_name: str
    file_permission: int | None = None


@dataclass(frozen=True)
class ObjectSpec:
    """One object of the SecretProviderClass, validated, with its final file name."""

    index: int
    object_name: str
    object_type: str
    file_name: str
    object_alias: str | None = None
    object_version: str | None = None
    object_version_label: str | None = None
    jmes_path: tuple[JmesPathEntry, ...] = ()
    cross_account_role_arn: str | None = None
    file_permission: int | None = None
    #: the backend's own fields (`Backend.object_fields`) that this object sets, as text
    fields: Mapping[str, str] = field(default_factory=dict, compare=False)
    #: problems that do not stop the mount (a field of another backend, ignored), for the logs
    warnings: tuple[str, ...] = field(default=(), compare=False)
    #: every field as the user wrote it
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def describe(self) -> str:
        """How messages name this object: position, name and type."""
        return f"object #{self.index + 1} ({self.object_type} {self.object_name!r})"


@dataclass(frozen=True)
class PodInfo:
    """The pod the driver mounts for; every field is absent for the sync controller."""

    name: str | None = None
    namespace: str | None = None
    uid: str | None = None
    service_account: str | None = None

    def describe(self) -> str:
        if self.namespace and self.name:
            return f"{self.namespace}/{self.name}"
        return "(no pod)"


@dataclass(frozen=True)
class ServiceAccountToken:
    token: str = field(repr=False)
    expiration: str | None = None


@dataclass(frozen=True)
class MountRequest:
    """Everything one Mount asks for, parsed. Secret material is kept out of repr()."""

    objects: tuple[ObjectSpec, ...]
    region: str | None
    path_translation: PathTranslation
    use_pod_identity: bool
    pod: PodInfo
    default_permission: int
    secret_provider_class: str | None = None
    #: the driver's attributes as received (partly pod-controlled)
    attributes: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)
    #: the nodePublishSecretRef data (may hold AccessKeys and tokens)
    secrets: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    def service_account_token(self, audience: str) -> ServiceAccountToken | None:
        """The pod's token for `audience`, from `secrets` first, then `attributes`.

        Raises InvalidArgument when the tokens field is present but malformed.
        """
        for source_name, source in (("secrets", self.secrets), ("attributes", self.attributes)):
            raw = source.get(ATTR_SA_TOKENS)
            if not raw:
                continue
            try:
                tokens = json.loads(raw)
            except (ValueError, RecursionError):
                raise InvalidArgument(
                    f"{ATTR_SA_TOKENS} in the request's {source_name} is not valid JSON; "
                    "check the CSIDriver tokenRequests configuration"
                ) from None
            entry = tokens.get(audience) if isinstance(tokens, dict) else None
            if isinstance(entry, dict) and isinstance(entry.get("token"), str) and entry["token"]:
                expiration = entry.get("expirationTimestamp")
                return ServiceAccountToken(
                    entry["token"], expiration if isinstance(expiration, str) else None
                )
        return None


BackendValidator = Callable[[ObjectSpec], None]


@dataclass(frozen=True)
class ObjectTypes:
    """What the parser knows of the installed backends: plain data, so parsing stays pure.

    `fields` maps each installed objectType to the object fields its backend declares
    (`Backend.object_fields`); `validators` maps an objectType to its backend's pure
    `validate`; `default` is the objectType of objects that name none (None: objectType is
    required). `ObjectTypes.ANY` accepts every objectType and declares no field (tests of the
    common fields).
    """

    fields: Mapping[str, Collection[str]] = field(default_factory=dict)
    validators: Mapping[str, BackendValidator] = field(default_factory=dict)
    default: str | None = None
    #: False: any objectType is accepted (no backend is consulted)
    checked: bool = True

    ANY: ClassVar[ObjectTypes]

    @cached_property
    def names(self) -> frozenset[str]:
        return frozenset(self.fields)

    @cached_property
    def owners(self) -> Mapping[str, str]:
        """Declared field name → the objectType declaring it (first in name order)."""
        owners: dict[str, str] = {}
        for object_type in sorted(self.fields):
            for name in sorted(self.fields[object_type]):
                owners.setdefault(name, object_type)
        return owners

    @cached_property
    def by_lower(self) -> Mapping[str, str]:
        """Lower-cased field name → field name, over the common and every declared field."""
        return {name.lower(): name for name in [*self.owners, *OBJECT_FIELDS]}


ObjectTypes.ANY = ObjectTypes(checked=False)


_T = TypeVar("_T")


class _Problems:
    """The problems found so far; a check that fails is recorded and the parse goes on."""

    def __init__(self) -> None:
        self.errors: list[InvalidArgument] = []
        #: fields refused for their form: a required one is not also reported missing
        self.failed: set[str] = set()

    def check(self, function: Callable[..., _T], *args: Any) -> _T | None:
        try:
            return function(*args)
        except InvalidArgument as exc:
            self.errors.append(exc)
            return None

    def scalar(self, where: str, name: str, value: Any) -> str | None:
        """Field `name` as one value (`_scalar`); a refused one is recorded in `failed`."""
        try:
            return _scalar(where, name, value)
        except InvalidArgument as exc:
            self.errors.append(exc)
            self.failed.add(name)
            return None

    def add(self, message: str) -> None:
        self.errors.append(InvalidArgument(message))

    def raise_any(self) -> None:
        if self.errors:
            raise _combined_invalid(self.errors)


def _combined_invalid(errors: Sequence[InvalidArgument]) -> InvalidArgument:
    error = combined(errors)
    assert isinstance(error, InvalidArgument)  # the first one's class
    return error


def _closest_name(name: str, choices: Collection[str]) -> str | None:
    match = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    if not match:
        lowered = {c.lower(): c for c in choices}
        if name.lower() in lowered:
            match = [lowered[name.lower()]]
    return match[0] if match else None


def _closest(name: str, choices: Collection[str]) -> str:
    match = _closest_name(name, choices)
    return f" Did you mean {match!r}?" if match else ""


def _unknown_field(problems: _Problems, where: str, key: Any, valid: Collection[str],
                   context: str = "") -> str:
    """Report an unknown field; returns the field it was probably meant to be (a misspelt
    required field is then not also reported as missing)."""
    guess = _closest_name(str(key), valid)
    problems.add(f"{where}: unknown field {key!r}; valid fields are {', '.join(valid)}{context}."
                 f"{f' Did you mean {guess!r}?' if guess else ''}")
    return guess or ""


#: a UTF-16 surrogate code point: in a decoded string only a lone one (json pairs the others)
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _decode_json_map(text: str, what: str, *, allow_null: bool) -> dict[str, str]:
    if text is None or text.strip() == "" or (allow_null and text.strip() == "null"):
        return {}
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        raise InvalidArgument(
            f"the driver's {what} field is not valid JSON; this is a driver/provider version "
            "mismatch, not a SecretProviderClass problem"
        ) from None
    if value is None and allow_null:
        return {}
    if not isinstance(value, dict):
        raise InvalidArgument(f"the driver's {what} field must be a JSON object")
    if any(_LONE_SURROGATE.search(part) for pair in value.items() for part in pair
           if isinstance(part, str) and not part.isascii()):
        # JSON can escape one ("\ud800"); no YAML parser, file or log line takes it
        raise InvalidArgument(
            f"the driver's {what} field holds a lone UTF-16 surrogate escape, which is no text "
            "and which the driver never sends; this is not a SecretProviderClass problem"
        )
    result: dict[str, str] = {}
    for key, item in value.items():
        if isinstance(item, str):
            result[str(key)] = item
        elif isinstance(item, bool):
            result[str(key)] = "true" if item else "false"
        elif isinstance(item, int | float):
            result[str(key)] = json.dumps(item)
        elif item is None:
            result[str(key)] = ""
        else:
            raise InvalidArgument(
                f"{what} key {key!r} must be a string (quote the value in the "
                "SecretProviderClass or the pod's volumeAttributes)"
            )
    return result


def _bool_param(value: str | None, name: str) -> bool:
    if value is None or value.strip() == "":
        return False
    lowered = value.strip().lower()
    if lowered == "true":
        return True
    if lowered == "false":
        return False
    raise InvalidArgument(f'parameter {name} is {value!r}; set it to "true" or "false"')


def _scalar(where: str, name: str, value: Any) -> str | None:
    """A scalar field as text, None when empty; refuse lists and maps."""
    if value is None:
        return None
    if not isinstance(value, str):
        kind = "list" if isinstance(value, list) else "map"
        raise InvalidArgument(
            f"{where}: field {name} must be a single value, not a {kind}; write one quoted "
            f"value such as '{name}: \"...\"'"
        )
    return value if value != "" else None


def _permission(where: str, value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return parse_file_permission(value)
    except ValueError as exc:
        # paths.py messages start with "filePermission '...'": this reads "field filePermission"
        raise InvalidArgument(f"{where}: field {exc}") from None


def _file_name(where: str, field_name: str, name: str, translation: PathTranslation) -> str:
    translated = translation.apply(name)
    problem = driver_path_problem(translated)
    if problem:
        hint = ""
        if translation.replacement is None and "/" in name:
            hint = " (pathTranslation is False, so '/' makes sub-directories)"
        raise InvalidArgument(
            f"{where}: field {field_name} {name!r} gives the file name {translated!r}, which the "
            f"driver would refuse: {problem}{hint}; set objectAlias to a plain file name such "
            "as \"db-password\""
        )
    return translated


def _parse_jmes_path(
    where: str, value: Any, translation: PathTranslation
) -> tuple[JmesPathEntry, ...]:
    if value is None or value == "":
        return ()
    if not isinstance(value, list):
        raise InvalidArgument(
            f"{where}: field jmesPath must be a list of entries like "
            "'- {path: \"username\", objectAlias: \"db-user\"}'"
        )
    problems = _Problems()
    entries = [problems.check(_parse_jmes_path_entry, f"{where}, jmesPath entry #{number}", item,
                              translation)
               for number, item in enumerate(value, start=1)]
    problems.raise_any()
    return tuple(entry for entry in entries if entry is not None)


def _parse_jmes_path_entry(
    where: str, item: Any, translation: PathTranslation
) -> JmesPathEntry:
    if not isinstance(item, dict):
        raise InvalidArgument(f"{where} must be a map with the fields path and objectAlias")
    item = _canonical_keys(where, item, _JMESPATH_FIELDS_BY_LOWER)
    problems = _Problems()
    reported = {_unknown_field(problems, where, key, JMESPATH_FIELDS)
                for key in item if key not in JMESPATH_FIELDS}
    path = problems.scalar(where, "path", item.get("path"))
    alias = problems.scalar(where, "objectAlias", item.get("objectAlias"))
    reported |= problems.failed
    if path is None and "path" not in reported:
        problems.add(
            f"{where}: field path is required; add the JMESPath expression whose "
            "result becomes the file, for example 'path: \"username\"'"
        )
    elif path is not None:
        problems.check(_check_jmespath_syntax, where, path)
    if alias is None and "objectAlias" not in reported:
        problems.add(
            f"{where}: field objectAlias is required; add the file name for the "
            f"result of {path!r}, for example 'objectAlias: \"db-user\"'"
        )
    file_name = (problems.check(_file_name, where, "objectAlias", alias, translation)
                 if alias is not None else None)
    permission = problems.check(
        _permission, where,
        problems.scalar(where, "filePermission", item.get("filePermission")))
    problems.raise_any()
    assert path is not None and alias is not None and file_name is not None
    return JmesPathEntry(path=path, object_alias=alias, file_name=file_name,
                         file_permission=permission)


def _check_jmespath_syntax(where: str, expression: str) -> None:
    import jmespath
    from jmespath.exceptions import JMESPathError

    try:
        jmespath.compile(expression)
    except RecursionError:
        raise InvalidArgument(
            f"{where}: field path {expression[:60]!r} is nested too deeply to be a JMESPath "
            "expression; simplify it"
        ) from None
    except (JMESPathError, ValueError) as exc:
        lines = str(exc).splitlines() or [type(exc).__name__]
        reason = lines[0].rstrip(":").removesuffix(", for expression")
        position = getattr(exc, "lex_position", None)
        if isinstance(position, int) and "column" not in reason:
            reason += f" at column {position}"
        raise InvalidArgument(
            f"{where}: field path {expression!r} is not a valid JMESPath expression "
            f"({reason}); check it against https://jmespath.org, for example "
            "'path: \"credentials.username\"'"
        ) from None


def _canonical_keys(
    where: str, item: dict[Any, Any], by_lower: Mapping[str, str]
) -> dict[Any, Any]:
    """Map keys that differ from a known field only in letter case to the field's name
    (`by_lower`: lower-cased field name → field name).

    The existing provider decodes objects through JSON, whose field matching ignores case, so
    `objectname` works there; a drop-in replacement accepts it too. Two spellings of one field
    in the same map are refused.
    """
    result: dict[Any, Any] = {}
    for key, value in item.items():
        name = by_lower.get(key.lower(), key) if isinstance(key, str) else key
        if name in result:
            raise InvalidArgument(
                f"{where}: field {name} is given twice (as {key!r} and another spelling); "
                "keep one"
            )
        result[name] = value
    return result


def _parse_object(
    index: int,
    item: Any,
    translation: PathTranslation,
    types: ObjectTypes,
) -> ObjectSpec:
    where = f"object #{index + 1}"
    if not isinstance(item, dict):
        raise InvalidArgument(
            f"{where} in parameter objects must be a map with at least objectName, "
            "for example '- objectName: \"db-password\"'"
        )
    owners = types.owners
    item = _canonical_keys(where, item, types.by_lower)
    name_preview = item.get("objectName")
    if isinstance(name_preview, str) and name_preview:
        where = f"object #{index + 1} ({name_preview!r})"
    problems = _Problems()
    object_type = problems.scalar(where, "objectType", item.get("objectType"))
    object_type = object_type or types.default
    known_type = object_type is not None and (not types.checked or object_type in types.names)
    if object_type is None and "objectType" not in problems.failed:
        problems.add(
            f"{where}: field objectType is required (this provider has no default objectType); "
            f"add one of the installed types: {', '.join(sorted(types.names)) or 'none'}"
        )
    elif object_type is not None and not known_type:
        installed = ", ".join(sorted(types.names)) or "none"
        problems.add(
            f"{where}: field objectType {object_type!r} is not an installed backend; use one "
            f"of the installed types: {installed}.{_closest(object_type, types.names)}"
        )
    # An unknown objectType: any backend's own field may be meant for the right one.
    own = set(types.fields.get(object_type or "", ())) if known_type else set(owners)
    valid = [*OBJECT_FIELDS, *sorted(own)]
    warnings: list[str] = []
    reported = set()
    for key in item:
        if key in OBJECT_FIELDS or key in own:
            continue
        if key in owners:
            warnings.append(
                f"{where}: field {key} belongs to objectType {owners[key]} and is ignored for "
                f"{object_type} objects; remove it (or set objectType: {owners[key]})"
            )
            continue
        reported.add(_unknown_field(problems, where, key, valid,
                                    f" (objectType {object_type})" if known_type else ""))
    values = {key: problems.scalar(where, key, item.get(key))
              for key in OBJECT_FIELDS if key not in ("objectType", "jmesPath")}  # read above
    own_values = ({key: problems.scalar(where, key, item.get(key)) for key in sorted(own)}
                  if known_type else {})
    reported |= problems.failed
    name = values["objectName"]
    if name is None and "objectName" not in reported:
        # The official provider: "object name must be specified" (also for null and ~)
        given = " is empty or null" if "objectName" in item else " is required"
        problems.add(
            f"{where}: field objectName{given}: the object name must be specified; add the "
            "secret or parameter name, for example 'objectName: \"db-password\"' (quote a "
            "name that is literally null or ~)"
        )
    if name is not None and name != name.strip():
        problems.add(
            f"{where}: field objectName {name!r} has leading or trailing spaces; remove them"
        )
    alias = values["objectAlias"]
    file_source = alias or name
    file_name = (problems.check(_file_name, where, "objectAlias" if alias else "objectName",
                                file_source, translation)
                 if file_source is not None else None)
    jmes_path = problems.check(_parse_jmes_path, where, item.get("jmesPath"), translation)
    permission = problems.check(_permission, where, values["filePermission"])
    problems.raise_any()
    assert object_type is not None and name is not None and file_name is not None
    assert jmes_path is not None
    return ObjectSpec(
        index=index,
        object_name=name,
        object_type=object_type,
        file_name=file_name,
        object_alias=alias,
        object_version=values["objectVersion"],
        object_version_label=values["objectVersionLabel"],
        jmes_path=jmes_path,
        cross_account_role_arn=values["crossAccountRoleArn"],
        file_permission=permission,
        fields=MappingProxyType({k: v for k, v in own_values.items() if v is not None}),
        warnings=tuple(warnings),
        raw=MappingProxyType(dict(item)),
    )


def _collisions(objects: Sequence[ObjectSpec]) -> list[InvalidArgument]:
    """Two files with the same path, and files that are also another file's directory."""
    problems = _Problems()
    owners: dict[str, str] = {}
    for spec in objects:
        names = [(spec.file_name, f"{spec.describe()}")]
        names += [
            (entry.file_name, f"{spec.describe()} jmesPath entry #{number} ({entry.path!r})")
            for number, entry in enumerate(spec.jmes_path, start=1)
        ]
        for path, owner in names:
            if path in owners:
                problems.add(
                    f"{owner} and {owners[path]} both write the file {path!r}; give one of "
                    "them a different objectAlias"
                )
                continue
            owners[path] = owner
    for path, owner in owners.items():
        parts = path.split("/")
        for depth in range(1, len(parts)):
            prefix = "/".join(parts[:depth])
            if prefix in owners:
                problems.add(
                    f"{owners[prefix]} writes the file {prefix!r}, but {owner} needs "
                    f"{prefix!r} to be a directory for {path!r}; rename one of them with "
                    "objectAlias"
                )
                break
    return problems.errors


def _load_objects_yaml(text: str, limits: RequestLimits) -> Any:
    """The `objects` text as plain data, within the request limits (InvalidArgument past one)."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > limits.objects_bytes:
        raise InvalidArgument(
            f"parameter objects is {size} bytes, above {beyond(limits, 'objects_bytes')}; "
            f"split the objects across several SecretProviderClasses, {RAISE}"
        )
    bounds = yaml_text.YamlBounds(max_nodes=limits.yaml_nodes, max_depth=limits.yaml_depth)
    try:
        return yaml_text.load(text, bounds)
    except yaml_text.YamlTooLarge as exc:
        fix = (f"write the objects out instead of reusing large anchors, or split them across "
               f"several SecretProviderClasses, {RAISE}" if exc.limit == "nodes" else
               "objects is a list of maps and only jmesPath nests deeper; flatten it")
        name = "yaml_nodes" if exc.limit == "nodes" else "yaml_depth"
        raise InvalidArgument(
            f"parameter objects, line {exc.mark.line + 1}: {exc.problem}, above "
            f"{beyond(limits, name)}; {fix}"
        ) from None
    except yaml_text.YamlProblem as exc:
        mark = exc.mark
        raise InvalidArgument(
            f"parameter objects, line {mark.line + 1}, column {mark.column + 1}: {exc.problem}"
            if mark else f"parameter objects: {exc.problem}"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise InvalidArgument(
            f"parameter objects is not valid YAML{where}: {problem}; it must be a YAML list "
            "such as '- objectName: \"db-password\"', with every field of an object indented "
            "like its first field"
        ) from None


def _check_counts(loaded: list[Any], limits: RequestLimits) -> None:
    """Refuse more objects, more jmesPath entries in one object, or a longer JMESPath expression
    than the limits allow (before any expression is compiled: compiling costs ~20 ms per KiB,
    and JMESPath keeps the last 128 compiled expressions)."""
    if len(loaded) > limits.objects:
        raise InvalidArgument(
            f"parameter objects lists {len(loaded)} objects, above {beyond(limits, 'objects')}; "
            f"split them across several SecretProviderClasses, {RAISE}"
        )
    for index, item in enumerate(loaded):
        if not isinstance(item, dict):
            continue
        for key, value in item.items():
            if not (isinstance(key, str) and key.lower() == "jmespath"
                    and isinstance(value, list)):
                continue
            if len(value) > limits.jmespath_entries:
                raise InvalidArgument(
                    f"object #{index + 1}: field jmesPath has {len(value)} entries, above "
                    f"{beyond(limits, 'jmespath_entries')}; split them across two objects with "
                    f"the same objectName and different objectAlias values, {RAISE}"
                )
            for number, entry in enumerate(value, start=1):
                for name, path in entry.items() if isinstance(entry, dict) else ():
                    if (isinstance(name, str) and name.lower() == "path"
                            and isinstance(path, str) and len(path) > limits.jmespath_length):
                        raise InvalidArgument(
                            f"object #{index + 1}, jmesPath entry #{number}: field path is "
                            f"{len(path)} characters, above {beyond(limits, 'jmespath_length')}; "
                            f"select what the file needs with a shorter expression, {RAISE}"
                        )


#: reads the `objects` text for one set of types and limits (parse_objects, or a memo of it)
ObjectsParser = Callable[[str | None, PathTranslation], tuple[ObjectSpec, ...]]


def parse_objects(
    text: str | None,
    translation: PathTranslation,
    types: ObjectTypes = ObjectTypes.ANY,
    limits: RequestLimits = DEFAULT_LIMITS,
) -> tuple[ObjectSpec, ...]:
    """Parse the `objects` parameter (a YAML list). Empty or absent → no objects."""
    objects, errors = check_objects(text, translation, types, limits)
    if errors:
        raise _combined_invalid(errors)
    return objects


def check_objects(
    text: str | None,
    translation: PathTranslation,
    types: ObjectTypes = ObjectTypes.ANY,
    limits: RequestLimits = DEFAULT_LIMITS,
) -> tuple[tuple[ObjectSpec, ...], list[InvalidArgument]]:
    """The valid objects of the `objects` parameter and every problem of it (for lint: the
    valid objects are what the SecretProviderClass would mount once the problems are fixed).

    Raises InvalidArgument when the text as a whole cannot be read (too large, not YAML, not a
    list, too many objects): there is then nothing to check object by object."""
    if text is None or text.strip() == "":
        return (), []
    loaded = _load_objects_yaml(text, limits)
    if loaded is None or loaded == "":
        return (), []
    if not isinstance(loaded, list):
        raise InvalidArgument(
            "parameter objects must be a YAML list of objects, each starting with '- ', for "
            "example '- objectName: \"db-password\"'"
        )
    _check_counts(loaded, limits)
    problems = _Problems()
    objects = []
    for index, item in enumerate(loaded):
        spec = problems.check(_parse_object, index, item, translation, types)
        validator = types.validators.get(spec.object_type) if spec is not None else None
        if spec is not None and validator is not None and problems.check(
                _validated, validator, spec) is None:
            continue
        if spec is not None:
            objects.append(spec)
    problems.errors += _collisions(objects)
    return tuple(objects), problems.errors


def _validated(validator: BackendValidator, spec: ObjectSpec) -> ObjectSpec:
    validator(spec)
    return spec


def parse_mount_request(
    attributes: str,
    secrets: str,
    permission: str,
    *,
    default_region: str | None = None,
    types: ObjectTypes = ObjectTypes.ANY,
    limits: RequestLimits = DEFAULT_LIMITS,
    objects_parser: ObjectsParser | None = None,
) -> MountRequest:
    """Parse the three JSON strings of a MountRequest into a frozen MountRequest.

    `types` says what the installed backends accept: their objectTypes, the object fields each
    declares, their pure validation functions (endpoint form, ARN form, versions) and the
    default objectType; `limits` bounds what the request may ask for. `objects_parser` reads
    the `objects` text instead of `parse_objects` (a caller's memo of it for these types/limits).
    Raises InvalidArgument, and nothing else, for any bad input.
    """
    attrs = _decode_json_map(attributes, "attributes", allow_null=True)
    secret_map = _decode_json_map(secrets, "secrets", allow_null=True)
    try:
        mode = parse_driver_permission(permission) if permission.strip() else 0o644
    except ValueError as exc:
        raise InvalidArgument(str(exc)) from None
    problems = _Problems()
    try:
        translation = parse_path_translation(attrs.get(ATTR_PATH_TRANSLATION))
    except ValueError as exc:
        problems.add(f"parameter {exc}")
        translation = parse_path_translation(None)  # to check the objects all the same
    region = attrs.get(ATTR_REGION) or default_region or None
    if region is not None and not REGION_PATTERN.match(region):
        problems.add(
            f"parameter region {region!r} is not a region id; use the form cn-hangzhou or "
            "ap-southeast-1"
        )
    use_pod_identity = problems.check(_bool_param, attrs.get(ATTR_USE_POD_TOKEN),
                                      ATTR_USE_POD_TOKEN)
    objects = (problems.check(parse_objects, attrs.get(ATTR_OBJECTS), translation, types, limits)
               if objects_parser is None
               else problems.check(objects_parser, attrs.get(ATTR_OBJECTS), translation))
    problems.raise_any()
    assert objects is not None and use_pod_identity is not None
    pod = PodInfo(
        name=attrs.get(ATTR_POD_NAME) or None,
        namespace=attrs.get(ATTR_POD_NAMESPACE) or None,
        uid=attrs.get(ATTR_POD_UID) or None,
        service_account=attrs.get(ATTR_SERVICE_ACCOUNT) or None,
    )
    return MountRequest(
        objects=objects,
        region=region,
        path_translation=translation,
        use_pod_identity=use_pod_identity,
        pod=pod,
        default_permission=mode,
        secret_provider_class=attrs.get(ATTR_SPC) or None,
        attributes=MappingProxyType(attrs),
        secrets=MappingProxyType(secret_map),
    )
