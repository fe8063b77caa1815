"""Hypothesis properties of SecretProviderClass parsing.

The driver's path validation and the permission grammar are re-implemented here independently
(from the driver's Go source and the documented forms), so a bug in core/mount/paths.py cannot hide
behind the same bug in the test.
"""

from __future__ import annotations

import json

import pytest
import strategies as s  # tests/strategies.py (tests/ is on pytest's pythonpath)
from hypothesis import assume, event, example, given, note
from hypothesis import strategies as st

from ack_secrets_provider.core.errors import InvalidArgument
from ack_secrets_provider.core.mount.paths import (
    PathTranslation,
    parse_driver_permission,
    parse_file_permission,
    parse_path_translation,
)
from ack_secrets_provider.core.mount.spec import MountRequest, ObjectTypes, parse_mount_request

TYPES = ObjectTypes(fields={"kms": {"kmsEndpoint"}, "oos": {"oosEndpoint"}}, default="kms")

# --- an independent model of the driver's File.path validation (driver v1.6, Go) ---------------


def go_clean(path: str) -> str:
    """Go's path.Clean, transcribed: lexical processing, returns '.' for an empty result."""
    if path == "":
        return "."
    rooted = path[0] == "/"
    n = len(path)
    out: list[str] = []
    r, dotdot = 0, 0
    if rooted:
        out.append("/")
        r, dotdot = 1, 1
    while r < n:
        if path[r] == "/" or (path[r] == "." and (r + 1 == n or path[r + 1] == "/")):
            r += 1
        elif path[r] == "." and path[r + 1] == "." and (r + 2 == n or path[r + 2] == "/"):
            r += 2
            if len(out) > dotdot:
                # backtrack to the previous '/'
                while len(out) > dotdot and out[-1] != "/":
                    out.pop()
                if out and len(out) > dotdot:
                    out.pop()
            elif not rooted:
                if out:
                    out.append("/")
                out.extend("..")
                dotdot = len(out)
        else:
            if (rooted and len(out) != 1) or (not rooted and out):
                out.append("/")
            while r < n and path[r] != "/":
                out.append(path[r])
                r += 1
    return "".join(out) or "."


def driver_accepts(path: str) -> bool:
    """The driver's validatePayload + validatePath, with Go's byte lengths."""
    if path == "" or go_clean(path) != path or path == ".":
        return False
    if path.startswith("/") or len(path.encode("utf-8", "surrogatepass")) > 4096:
        return False
    items = path.split("/")
    for item in items:
        if item == ".." or len(item.encode("utf-8", "surrogatepass")) > 255:
            return False
    return not (items[0].startswith("..") and len(items[0]) > 2)


def writable(path: str) -> bool:
    """What no file system accepts even when the driver does."""
    return "\x00" not in path


def test_go_clean_model_matches_go_examples() -> None:
    # cases from Go's path/path_test.go, so the model itself is checked
    cases = {
        "": ".", "abc": "abc", "abc/def": "abc/def", "a/b/c": "a/b/c", ".": ".", "..": "..",
        "../..": "../..", "../../abc": "../../abc", "/abc": "/abc", "/": "/", "abc/": "abc",
        "abc/def/": "abc/def", "//abc": "/abc", "///abc": "/abc", "abc//def//ghi": "abc/def/ghi",
        "abc/./def": "abc/def", "/./abc/def": "/abc/def", "abc/.": "abc", "abc/def/..": "abc",
        "abc/def/../..": ".", "/abc/def/../..": "/", "abc/def/../../..": "..",
        "/abc/def/../../..": "/", "abc/def/../../../ghi/jkl/../../../mno": "../../mno",
        "abc/./../def": "def", "abc//./../def": "def", "abc/../../././../def": "../../def",
    }
    for given_path, expected in cases.items():
        assert go_clean(given_path) == expected, given_path


def all_file_paths(request: MountRequest) -> list[str]:
    paths = []
    for spec in request.objects:
        paths.append(spec.file_name)
        paths.extend(entry.file_name for entry in spec.jmes_path)
    return paths


def parse(objects_yaml: str, **parameters: str) -> MountRequest:
    return parse_mount_request(s.attributes(objects_yaml, **parameters), "null", '"420"',
                               types=TYPES)


# --- 1. totality --------------------------------------------------------------------------------


@given(
    attributes=s.arbitrary_attributes(),
    secrets=s.arbitrary_secrets,
    permission=s.arbitrary_permissions,
    known=st.one_of(st.none(), st.just(TYPES)),
)
# inputs that once escaped as RecursionError / TypeError / KeyError
@example(json.dumps({"objects": "[" * 5000}), "null", '"420"', None)
@example("[" * 100000, "null", '"420"', None)
@example(json.dumps({"objects": "- objectName: a\n  jmesPath:\n  - objectAlias: b\n    path: "
                                + "(" * 3000 + "a"}), "null", '"420"', None)
@example("{}", '{"k": ' + "[" * 100000 + "}", '"420"', None)
@example("{}", "null", "[" * 100000, None)
@example(json.dumps({"objects": "- {? [a] : b}"}), "null", '"420"', None)
@example(json.dumps({"objects": "- &a [*a]"}), "null", '"420"', None)
@example(json.dumps({"objects": "- objectName: a\n  objectName: b"}), "null", "", None)
def test_any_input_parses_or_raises_invalid_argument(
    attributes: str, secrets: str, permission: str, known: ObjectTypes | None
) -> None:
    try:
        result = parse_mount_request(attributes, secrets, permission,
                                     types=known or ObjectTypes.ANY)
    except InvalidArgument as exc:
        event("refused")
        assert str(exc).strip(), "an InvalidArgument must carry a message"
        return
    event("parsed")
    assert isinstance(result, MountRequest)
    for path in all_file_paths(result):
        assert driver_accepts(path), path


@given(objects=s.arbitrary_objects_text(), translation=st.sampled_from(["", "False", "-"]))
def test_any_objects_yaml_parses_or_raises_invalid_argument(objects: str, translation: str) -> None:
    try:
        result = parse(objects, pathTranslation=translation)
    except InvalidArgument:
        return
    assert all(driver_accepts(path) for path in all_file_paths(result))


# --- 2. every produced path passes the driver's validation, and no good path is refused --------


@given(
    name=s.tricky_names,
    alias=st.one_of(st.none(), s.tricky_names),
    jmes_alias=st.one_of(st.none(), s.tricky_names),
    translation=st.sampled_from(["", "_", "-", ".", "False", "false", "FALSE"]),
)
@example(name=".", alias=None, jmes_alias=None, translation="False")
@example(name="db", alias=".", jmes_alias=None, translation="")
@example(name="db", alias=None, jmes_alias="..", translation="")
@example(name="a/../b", alias=None, jmes_alias=None, translation="False")
@example(name="a/./b", alias=None, jmes_alias=None, translation="False")
@example(name="a//b", alias=None, jmes_alias=None, translation="False")
@example(name="a/b/", alias=None, jmes_alias=None, translation="False")
@example(name="..data", alias=None, jmes_alias=None, translation="")
@example(name="x", alias="中" * 86, jmes_alias=None, translation="")  # 258 bytes, 86 characters
@example(name="x", alias="中" * 85, jmes_alias=None, translation="")  # 255 bytes: fine
@example(name="x", alias="/".join(["a" * 255] * 17), jmes_alias=None, translation="False")
@example(name="app/db/pass", alias=None, jmes_alias=None, translation="False")
def test_file_paths_pass_the_driver_rules(
    name: str, alias: str | None, jmes_alias: str | None, translation: str
) -> None:
    obj: dict[str, object] = {"objectName": name}
    if alias is not None:
        obj["objectAlias"] = alias
    if jmes_alias is not None:
        obj["jmesPath"] = [{"path": "username", "objectAlias": jmes_alias}]
    rule = parse_path_translation(translation)
    expected = [rule.apply(alias or name)] + ([rule.apply(jmes_alias)] if jmes_alias else [])
    note(f"expected file paths {expected!r}")
    collide = len(expected) == 2 and (
        expected[0] == expected[1]
        or expected[1].startswith(expected[0] + "/")
        or expected[0].startswith(expected[1] + "/")
    )
    ok = (
        all(driver_accepts(p) and writable(p) for p in expected)
        and not collide
        and name != ""  # objectName is required
        and name == name.strip()  # the parser's own rule for objectName
        and jmes_alias != ""  # a jmesPath entry needs its objectAlias
    )
    try:
        request = parse(s.render_objects([obj]), pathTranslation=translation)
    except InvalidArgument as exc:
        event("refused")
        # the parser refuses exactly what the driver (or the file system) would refuse
        assert not ok, f"refused a path the driver accepts: {exc}"
        assert "object #1" in str(exc)
        return
    event("accepted")
    assert ok, f"accepted {all_file_paths(request)!r}, which the driver refuses"
    assert all_file_paths(request) == expected


# --- 3. pathTranslation round-trips -------------------------------------------------------------


@given(name=s.object_names, char=s.translation_chars)
def test_translation_replaces_every_slash(name: str, char: str) -> None:
    translated = PathTranslation(char).apply(name)
    assert "/" not in translated
    assume(driver_accepts(translated))  # e.g. '.' turning "/.x" into "..x" is refused, rightly
    assert translated == name.replace("/", char)
    assert parse_path_translation(char) == PathTranslation(char)
    request = parse(s.render_objects([{"objectName": name}]), pathTranslation=char)
    assert request.objects[0].file_name == name.replace("/", char)
    assert request.objects[0].object_name == name


@given(name=s.object_names, spelling=s.false_spellings)
def test_false_keeps_sub_directories(name: str, spelling: str) -> None:
    assert parse_path_translation(spelling) == PathTranslation(None)
    request = parse(
        s.render_objects(
            [{"objectName": "p@rent", "jmesPath": [{"path": "a", "objectAlias": name}]}]
        ),
        pathTranslation=spelling,
    )
    expected = name[1:] if name.startswith("/") else name
    assert request.objects[0].jmes_path[0].file_name == expected
    assert expected.count("/") == name.count("/") - name.startswith("/")


@given(value=st.one_of(st.text(max_size=6), s.false_spellings, s.translation_chars))
def test_path_translation_accepts_exactly_the_documented_values(value: str) -> None:
    documented = (
        value == ""
        or value.lower() == "false"
        or (len(value) == 1 and value not in "/\\" and value.isprintable() and not value.isspace())
    )
    try:
        parse_path_translation(value)
    except ValueError:
        assert not documented, value
    else:
        assert documented, value


# --- 4. collisions are always detected ----------------------------------------------------------


def _prefix_free(names: list[str]) -> bool:
    return not any(a == b or b.startswith(a + "/") for a in names for b in names if a is not b)


@st.composite
def colliding_objects(draw: st.DrawFn) -> tuple[list[dict[str, object]], int, int]:
    """Valid, non-colliding objects plus one new object whose file clashes with an existing one.

    Returns (objects, index of the existing owner, index of the newcomer).
    """
    names = draw(st.lists(s.object_names.map(lambda n: n.lstrip("/")), min_size=1, max_size=5,
                          unique=True).filter(_prefix_free))
    objects: list[dict[str, object]] = []
    files: list[tuple[str, int]] = []  # (file name, owner index)
    for index, name in enumerate(names):
        obj: dict[str, object] = {"objectType": draw(s.object_types)}
        how = draw(st.sampled_from(["name", "alias", "jmes"]))
        if how == "name":
            obj["objectName"] = name
        elif how == "alias":
            obj["objectName"] = f"secret@{index}"
            obj["objectAlias"] = name
        else:
            # the parent file and one jmesPath file: "<name>.json" is never a prefix of another
            # '@' is not in the segment alphabet, so helper names never clash by accident
            obj["objectName"] = f"secret@{index}.json"
            obj["jmesPath"] = [{"path": "a", "objectAlias": name}]
            files.append((f"secret@{index}.json", index))
        files.append((name, index))
        objects.append(obj)
    target, owner = draw(st.sampled_from(files))
    kind = draw(st.sampled_from(["same", "file-is-parent-dir", "dir-is-existing-file"]))
    if kind == "same":
        clash = target
    elif kind == "file-is-parent-dir":
        clash = target + "/" + draw(s.safe_segments)  # existing file used as a directory
    else:
        assume("/" in target)
        clash = target.rsplit("/", 1)[0]  # existing file's directory written as a file
    how = draw(st.sampled_from(["name", "alias", "jmes"]))
    newcomer: dict[str, object] = {"objectType": draw(s.object_types)}
    if how == "name":
        newcomer["objectName"] = clash
    elif how == "alias":
        newcomer["objectName"] = "new@comer"
        newcomer["objectAlias"] = clash
    else:
        newcomer["objectName"] = "new@comer.json"
        newcomer["jmesPath"] = [{"path": "b", "objectAlias": clash}]
    position = draw(st.integers(0, len(objects)))
    objects.insert(position, newcomer)
    owner = owner + 1 if owner >= position else owner
    return objects, owner, position


@given(case=colliding_objects())
def test_collisions_name_both_objects(case: tuple[list[dict[str, object]], int, int]) -> None:
    objects, owner, newcomer = case
    without = [o for i, o in enumerate(objects) if i != newcomer]
    parse(s.render_objects(without), pathTranslation="False")  # the rest is fine on its own
    with pytest.raises(InvalidArgument) as caught:
        parse(s.render_objects(objects), pathTranslation="False")
    message = str(caught.value)
    for index in (owner, newcomer):
        assert f"#{index + 1} " in message, message
        assert repr(objects[index]["objectName"]) in message, message


@given(names=st.lists(s.object_names, min_size=1, max_size=6), types=st.lists(s.object_types))
def test_distinct_translated_names_parse(names: list[str], types: list[str]) -> None:
    assume(len({n.replace("/", "_") for n in names}) == len(names))
    objects = [
        {"objectName": n, "objectType": types[i % len(types)] if types else "kms"}
        for i, n in enumerate(names)
    ]
    request = parse(s.render_objects(objects))
    assert [o.file_name for o in request.objects] == [n.replace("/", "_") for n in names]


# --- 5. permissions accept exactly the documented forms ------------------------------------------

#: every accepted filePermission text and its mode, enumerated from the documented forms
FILE_PERMISSION_FORMS: dict[str, int] = {"0": 0}
for _mode in range(0o1000):
    _octal = format(_mode, "o")
    for _width in range(len(_octal), 5):
        for _prefix in ("0", "0o", "0O"):
            FILE_PERMISSION_FORMS[_prefix + _octal.zfill(_width)] = _mode
    if _mode:
        FILE_PERMISSION_FORMS[str(_mode)] = _mode

#: every accepted MountRequest.permission (JSON of the decimal Go mode) and its mode
DRIVER_PERMISSION_FORMS: dict[str, int] = {}
for _mode in range(512):
    DRIVER_PERMISSION_FORMS[json.dumps(str(_mode))] = _mode
    DRIVER_PERMISSION_FORMS[str(_mode)] = _mode

_permission_texts = st.one_of(
    st.sampled_from(sorted(FILE_PERMISSION_FORMS)),
    st.text("0123456789oOxX+-_ .e", max_size=6),
    st.integers(-10, 5000).map(str),
    st.integers(0, 0o7777).map(lambda n: "0" + format(n, "o")),
    st.text(max_size=5),
)


@given(value=_permission_texts)
@example("000644")
@example("0o00644")
@example(" 0440")
@example("0440\n")
@example("٤٢٠")
@example("0x1a4")
@example("+420")
def test_file_permission_accepts_exactly_the_documented_forms(value: str) -> None:
    try:
        mode = parse_file_permission(value)
    except ValueError as exc:
        assert value not in FILE_PERMISSION_FORMS, f"{value!r} refused: {exc}"
        assert repr(value) in str(exc)
    else:
        assert FILE_PERMISSION_FORMS.get(value) == mode, value


@given(value=st.one_of(
    st.sampled_from(sorted(DRIVER_PERMISSION_FORMS)),
    _permission_texts,
    _permission_texts.map(json.dumps),
))
@example('"٤٢٠"')
@example("420.0")
@example("-0")
@example('"0420"')
@example("true")
def test_driver_permission_accepts_exactly_the_documented_forms(value: str) -> None:
    expected = DRIVER_PERMISSION_FORMS.get(value.strip(" \t\r\n"))
    try:
        mode = parse_driver_permission(value)
    except ValueError:
        assert expected is None, value
    else:
        assert mode == expected, value


@given(value=st.one_of(
    st.sampled_from(sorted(FILE_PERMISSION_FORMS)),
    st.text("0123456789oOxX+-_ .e", max_size=6),
    st.integers(0, 0o7777).map(lambda n: "0" + format(n, "o")),
), plain=st.booleans(), jmes=st.booleans())
def test_file_permission_through_the_parser(value: str, plain: bool, jmes: bool) -> None:
    obj: dict[str, object] = {"objectName": "db"}
    if jmes:
        obj["jmesPath"] = [{"path": "a", "objectAlias": "a", "filePermission": value}]
    else:
        obj["filePermission"] = value
    try:
        request = parse(s.render_objects([obj], plain=plain))
    except InvalidArgument as exc:
        assert value != "" and value not in FILE_PERMISSION_FORMS, str(exc)
        assert "object #1 ('db')" in str(exc) and "filePermission" in str(exc), str(exc)
        return
    expected = FILE_PERMISSION_FORMS[value] if value else None
    spec = request.objects[0]
    assert (spec.jmes_path[0].file_permission if jmes else spec.file_permission) == expected


# --- 6. names, aliases and versions keep the exact text ------------------------------------------


@given(text=s.yaml_look_alikes, plain=st.booleans())
def test_yaml_look_alikes_keep_their_text(text: str, plain: bool) -> None:
    obj = {
        "objectName": text,
        "objectAlias": text + "-alias",
        "objectVersion": text,
        "objectVersionLabel": text,
        "jmesPath": [{"path": "a", "objectAlias": text}],
    }
    request = parse(s.render_objects([obj], plain=plain))
    spec = request.objects[0]
    assert spec.object_name == text
    assert spec.object_alias == text + "-alias"
    assert spec.object_version == text
    assert spec.object_version_label == text
    assert spec.jmes_path[0].object_alias == text
    assert spec.jmes_path[0].file_name == text


@given(text=s.yaml_look_alikes)
def test_yaml_look_alike_alias_is_the_file_name(text: str) -> None:
    request = parse(f"- objectName: db\n  objectAlias: {s.yaml_scalar(text, plain=True)}\n")
    assert request.objects[0].file_name == text
