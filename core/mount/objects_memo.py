"""A bounded memo of parsed `objects` texts.

Since driver v1.6 every pod's volume is republished about once a minute, and each republish
resends the SecretProviderClass's `objects` text unchanged, so the provider would parse the same
YAML over and over (for a cache hit, parsing is the largest part of the mount's CPU). The memo
keys each result by the exact text and the path translation; the parser's other inputs (the
backends' object types and the request limits) are fixed for one memo, which is built once per
process with them. Only successful parses are kept (a refused text is parsed, and refused, each
time); the parser itself stays pure, and its results are immutable, so sharing them is safe.

Bounded by an estimate of the memory the entries hold (the `objects` text is itself bounded by
the request limits), evicting the least recently used first.
"""

from __future__ import annotations

import threading

from cachetools import LRUCache

from ack_secrets_provider.core.mount.limits import RequestLimits
from ack_secrets_provider.core.mount.paths import PathTranslation
from ack_secrets_provider.core.mount.spec import ObjectSpec, ObjectTypes, parse_objects

#: memory the memo may hold (estimated), enough for thousands of ordinary SecretProviderClasses
MAX_BYTES = 4 * 1024 * 1024
#: estimated bytes held per character of text (the text, its fields copied into the specs) and
#: per entry (key, specs' objects, bookkeeping)
BYTES_PER_CHAR = 4
ENTRY_OVERHEAD = 1024

_Key = tuple[str, PathTranslation]


class ObjectsMemo:
    """`parse_objects` for fixed `types` and `limits`, remembering recent results. Thread-safe."""

    def __init__(self, types: ObjectTypes, limits: RequestLimits, *,
                 max_bytes: int = MAX_BYTES) -> None:
        self.types = types
        self.limits = limits
        self._parses: LRUCache[_Key, tuple[int, tuple[ObjectSpec, ...]]] = LRUCache(
            maxsize=max_bytes, getsizeof=lambda entry: entry[0])
        self._lock = threading.Lock()

    def __call__(self, text: str | None, translation: PathTranslation) -> tuple[ObjectSpec, ...]:
        if not text:
            return parse_objects(text, translation, self.types, self.limits)
        key = (text, translation)
        with self._lock:
            try:  # one lookup: cachetools' get() compares the text with the key's twice
                return self._parses[key][1]
            except KeyError:
                pass
        objects = parse_objects(text, translation, self.types, self.limits)  # raises: not kept
        size = len(text) * BYTES_PER_CHAR + ENTRY_OVERHEAD
        if size <= self._parses.maxsize:
            with self._lock:
                self._parses[key] = (size, objects)
        return objects

    def __len__(self) -> int:
        with self._lock:
            return len(self._parses)
