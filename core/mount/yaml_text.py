"""Bounded reading of the `objects` YAML: plain data, merge keys, cost proportional to the text.

A pod author controls `objects` (volumeAttributes override SecretProviderClass parameters), and
YAML aliases let a 100 KiB text stand for millions of nodes: one object with 1,500 jmesPath
entries behind an anchor, reused by alias 1,500 times, is 2.25 million entries for the code
after the parser. So this reader builds the data from the parser's event stream and counts every
node *as expanded* (an alias counts the whole size of the node it names, each time it is used),
refusing the text as soon as the count or the nesting depth passes its bound. Work therefore stops
after at most `max_nodes` events, whatever the text expands to.

What it builds is what PyYAML's BaseLoader builds (every scalar the exact text written, no YAML
1.1 typing), with two additions the official provider's YAML reader (go-yaml) has:

- merge keys: `<<: *base` (or `<<: [*a, *b]`) copies the named maps' fields into the map; fields
  written in the map win, then earlier maps of the list;
- a plain `~`, `null`, `Null`, `NULL` or empty value is None (a quoted "null" stays text).

It refuses a key given twice in one map (nearly always a forgotten `- ` between two objects) and
a key that is not plain text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

# libyaml's event parser when PyYAML has it (5-10x faster), else the pure-Python one.
_Loader: type[Any] = getattr(yaml, "CBaseLoader", yaml.BaseLoader)

_NULLS = frozenset({"", "~", "null", "Null", "NULL"})
MERGE_KEY = "<<"


@dataclass(frozen=True)
class YamlBounds:
    """How much YAML one request may make the provider build."""

    #: nodes after expanding aliases and merge keys (each use of an alias counts its whole size)
    max_nodes: int
    #: lists and maps nested in one another
    max_depth: int


class YamlProblem(Exception):
    """The YAML is well formed but not plain data (duplicate key, bad merge, bad alias)."""

    def __init__(self, problem: str, mark: Any) -> None:
        super().__init__(problem)
        self.problem = problem
        self.mark = mark


class YamlTooLarge(YamlProblem):
    """The YAML passes a bound: `limit` names which (`"nodes"` or `"depth"`)."""

    def __init__(self, problem: str, mark: Any, limit: str) -> None:
        super().__init__(problem, mark)
        self.limit = limit


def _is_plain(event: Any) -> bool:
    """An untagged plain scalar (libyaml reports the plain style as '', PyYAML as None)."""
    return event.tag is None and bool(event.implicit[0]) and not event.style


class _Collection:
    """A list or map being built, with the node count when it started (for its anchor)."""

    __slots__ = ("anchor", "items", "key", "keys_at", "mark", "merged", "started_at")

    def __init__(self, items: list[Any] | dict[str, Any], anchor: str | None, mark: Any,
                 started_at: int) -> None:
        self.items = items
        self.anchor = anchor
        self.mark = mark
        self.started_at = started_at
        #: map only: the key waiting for its value (`_NO_KEY` when the next scalar is a key)
        self.key: Any = _NO_KEY
        self.keys_at: Any = None
        #: map only: maps named by merge keys, in order
        self.merged: list[dict[str, Any]] = []


_NO_KEY = object()
_MERGE = object()


def load(text: str, bounds: YamlBounds) -> Any:
    """The single YAML document in `text` as lists, dicts, str and None.

    Raises YamlTooLarge past a bound, YamlProblem for data that is not plain, and PyYAML's
    yaml.YAMLError for a syntax error.
    """
    anchors: dict[str, tuple[Any, int]] = {}
    stack: list[_Collection] = []
    count = 0
    documents = 0
    result: Any = None

    def grow(size: int, mark: Any) -> None:
        nonlocal count
        count += size
        if count > bounds.max_nodes:
            raise YamlTooLarge(
                f"the YAML has more than {bounds.max_nodes} nodes once aliases and merge keys "
                "are expanded (each use of an alias counts every node it names)", mark, "nodes",
            )

    def deliver(value: Any, mark: Any, *, plain_key: bool = False) -> None:
        nonlocal result
        if not stack:
            result = value
            return
        parent = stack[-1]
        if isinstance(parent.items, list):
            parent.items.append(value)
        elif parent.key is _NO_KEY:
            if plain_key and value == MERGE_KEY:
                parent.key = _MERGE
            elif not isinstance(value, str):
                raise YamlProblem("a field name must be plain text, not a list or a map", mark)
            elif value in parent.items:
                raise YamlProblem(
                    f"field {value!r} appears twice in the same object (did you forget the '- ' "
                    "that starts the next object?)", mark,
                )
            else:
                parent.key = value
            parent.keys_at = mark
        elif parent.key is _MERGE:
            parent.merged.extend(_merge_sources(value, parent.keys_at))
            parent.key = _NO_KEY
        else:
            parent.items[parent.key] = value
            parent.key = _NO_KEY

    loader = _Loader(text)
    try:
        while True:
            event = loader.get_event()
            kind = type(event)
            if kind is yaml.ScalarEvent:
                grow(1, event.start_mark)
                plain = _is_plain(event)
                in_key = bool(stack) and stack[-1].key is _NO_KEY and isinstance(
                    stack[-1].items, dict)
                value = None if plain and not in_key and event.value in _NULLS else event.value
                if event.anchor is not None:
                    anchors[event.anchor] = (value, 1)
                deliver(value, event.start_mark, plain_key=plain and in_key)
            elif kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
                done = stack.pop()
                value = done.items
                if done.merged:
                    value = _with_merged(done.items, done.merged)  # type: ignore[arg-type]
                if done.anchor is not None:
                    anchors[done.anchor] = (value, count - done.started_at + 1)
                deliver(value, done.mark)
            elif kind is yaml.MappingStartEvent or kind is yaml.SequenceStartEvent:
                grow(1, event.start_mark)
                if len(stack) >= bounds.max_depth:
                    raise YamlTooLarge(
                        f"the YAML nests lists and maps more than {bounds.max_depth} deep",
                        event.start_mark, "depth",
                    )
                items: list[Any] | dict[str, Any] = (
                    [] if kind is yaml.SequenceStartEvent else {})
                stack.append(_Collection(items, event.anchor, event.start_mark, count))
            elif kind is yaml.AliasEvent:
                if event.anchor not in anchors:
                    raise YamlProblem(
                        f"alias *{event.anchor} names no anchor defined before it (an alias "
                        "cannot name a map or list that contains it)", event.start_mark,
                    )
                value, size = anchors[event.anchor]
                grow(size, event.start_mark)
                deliver(value, event.start_mark)
            elif kind is yaml.DocumentStartEvent:
                documents += 1
                if documents > 1:
                    raise YamlProblem("expected a single YAML document, found a second '---'",
                                      event.start_mark)
            elif kind is yaml.StreamEndEvent:
                return result
    except yaml.MarkedYAMLError as exc:
        if "nesting depth" in (exc.problem or ""):  # libyaml's own bound (1000) came first
            raise YamlTooLarge(
                f"the YAML nests lists and maps more than {bounds.max_depth} deep",
                exc.problem_mark, "depth",
            ) from None
        raise
    finally:
        loader.dispose()


def _merge_sources(value: Any, mark: Any) -> list[dict[str, Any]]:
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list) and all(isinstance(item, dict) for item in value):
        return value
    raise YamlProblem(
        "a merge key '<<' must name a map or a list of maps, for example '<<: *base' after "
        "'- &base {objectName: db}'", mark,
    )


def _with_merged(own: dict[str, Any], sources: list[dict[str, Any]]) -> dict[str, Any]:
    """The map's own fields over the merged maps' fields (earlier maps win among those)."""
    merged: dict[str, Any] = {}
    for source in reversed(sources):
        merged.update(source)
    merged.update(own)
    return merged
