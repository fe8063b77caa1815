"""docs/secretproviderclass.md cannot drift from the parser.

(a) every parameter and field the parser knows has a row in the doc's tables;
(b) every documented mistake (a `yaml` block followed by a `text` block under "## Errors") is run
    through the parser and must produce exactly the documented message;
(c) the doc's full SecretProviderClass example parses.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from ack_secrets_provider.core.errors import InvalidArgument
from ack_secrets_provider.core.mount.spec import (
    JMESPATH_FIELDS,
    OBJECT_FIELDS,
    PARAMETERS,
    parse_mount_request,
)
from ack_secrets_provider.core.plugins.host import BackendHost
from ack_secrets_provider.core.settings import ProviderSettings

DOC = Path(__file__).resolve().parent.parent / "docs" / "secretproviderclass.md"
#: the built-in backends as `serve` loads them: their objectTypes and their own object fields
_BUILTINS = BackendHost(ProviderSettings())
_BUILTINS.load(autoload_third_party=False)
TYPES = _BUILTINS.object_types()
BACKEND_FIELDS = {name for fields in TYPES.fields.values() for name in fields}
_FENCE = re.compile(r"```(\w+)\n(.*?)```", re.DOTALL)


def _doc() -> str:
    return DOC.read_text(encoding="utf-8")


def _section(text: str, heading: str) -> str:
    """The text under `heading`, up to the next heading of any level."""
    start = text.index(heading + "\n")
    rest = text[start + len(heading) + 1 :]
    end = re.search(r"^#+ ", rest, re.MULTILINE)
    return rest[: end.start()] if end else rest


def _table_keys(section: str) -> set[str]:
    return set(re.findall(r"^\| `([^`]+)` \|", section, re.MULTILINE))


def _mistakes() -> list[tuple[str, str, str]]:
    """(title, yaml block, text block) for each documented mistake."""
    doc = _doc()
    errors = doc[doc.index("## Errors\n") + len("## Errors\n"):]  # with its ### subsections
    following = re.search(r"^#{1,2} ", errors, re.MULTILINE)
    errors = errors[: following.start()] if following else errors
    cases = []
    for block in re.split(r"^### ", errors, flags=re.MULTILINE)[1:]:
        title = block.splitlines()[0].strip()
        fences = _FENCE.findall(block)
        assert [kind for kind, _ in fences] == ["yaml", "text"], (
            f"mistake {title!r} must have exactly one yaml block then one text block"
        )
        cases.append((title, fences[0][1], fences[1][1]))
    return cases


def _parameters(snippet: str) -> dict[str, str]:
    loaded = yaml.safe_load(snippet)
    params = loaded["spec"]["parameters"] if "spec" in loaded else loaded["parameters"]
    for key, value in params.items():
        assert isinstance(value, str), f"parameter {key} must be a string in Kubernetes"
    return dict(params)


def _parse(params: dict[str, str]) -> object:
    return parse_mount_request(json.dumps(params), "null", '"420"', types=TYPES)


@pytest.mark.parametrize(
    ("heading", "keys"),
    [
        ("## Parameters", PARAMETERS),
        ("## Object fields", {*OBJECT_FIELDS, *BACKEND_FIELDS}),
        ("### jmesPath entry fields", JMESPATH_FIELDS),
    ],
)
def test_every_key_is_documented(heading: str, keys: object) -> None:
    documented = _table_keys(_section(_doc(), heading))
    missing = sorted(set(keys) - documented)  # type: ignore[call-overload]
    assert not missing, f"{DOC.name} section {heading!r} has no row for {missing}"
    unknown = sorted(documented - set(keys))  # type: ignore[call-overload]
    assert not unknown, f"{DOC.name} section {heading!r} documents unknown keys {unknown}"


def test_the_doc_lists_enough_mistakes() -> None:
    assert len(_mistakes()) >= 15


@pytest.mark.parametrize(("title", "snippet", "message"), _mistakes(), ids=lambda v: v[:40])
def test_documented_mistake_gives_the_documented_message(
    title: str, snippet: str, message: str
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        _parse(_parameters(snippet))
    assert str(caught.value) == message.strip(), (
        f"{DOC.name}, mistake {title!r}: the parser now says\n{caught.value}"
    )
    # the rule every message follows: it names the object (or the parameter) it is about
    assert message.startswith(("object #", "parameter ")), title


def test_the_full_example_parses() -> None:
    examples = [
        body
        for kind, body in _FENCE.findall(_section(_doc(), "# SecretProviderClass reference"))
        if kind == "yaml" and "kind: SecretProviderClass" in body
    ]
    assert examples, "the doc has no full SecretProviderClass example"
    for example in examples:
        parameters = _parameters(example)
        request = _parse(parameters)
        # every object the example declares comes out, in order, under its own name and type
        declared = [(entry["objectName"], entry.get("objectType", "kms"))
                    for entry in yaml.safe_load(parameters["objects"])]
        parsed = [(spec.object_name, spec.object_type)
                  for spec in request.objects]  # type: ignore[attr-defined]
        assert parsed == declared
