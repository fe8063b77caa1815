"""Checks on the fields of an upstream answer, before any of them is used.

The SDK models copy whatever JSON the server sent into their attributes without checking types:
`{"SecretData": 12345, "VersionId": ["x"]}` becomes an int and a list. A backend reads each field
it uses through `field`, which returns it only when it has the documented type, so a wrong answer
is refused as an UnexpectedAnswer naming the endpoint and the field, never written to a file as a
Python repr; so is a string that is not text (a lone surrogate JSON escaped, which no file or
header can hold). The field's value is never quoted (it may be a secret).
"""

from __future__ import annotations

from typing import IO, Any, TypeVar

from ack_secrets_provider.core.errors import UnexpectedAnswer

T = TypeVar("T")

__all__ = ["body_of", "field", "optional_field", "read_bounded"]

_KIND = {str: "a string", int: "an integer", list: "a list", dict: "an object"}


def _refuse(where: str, name: str, problem: str) -> UnexpectedAnswer:
    return UnexpectedAnswer(
        f"{where}: the answer's field {name} {problem}; this endpoint does not answer as the "
        "service documents: check the endpoint (and any override or proxy), or report it"
    )


def optional_field(value: object, kind: type[T], name: str, where: str) -> T | None:
    """`value` if it is None or of type `kind` (bool is not an integer), else UnexpectedAnswer."""
    if value is None:
        return None
    if isinstance(value, str) and not value.isascii():
        try:  # JSON may escape a lone UTF-16 surrogate ("\ud800"): no file or header holds it
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise _refuse(where, name, "is not text (a lone UTF-16 surrogate)") from None
    if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    expected = _KIND.get(kind, kind.__name__)
    raise _refuse(where, name, f"is {type(value).__name__}, not {expected}")


def field(value: object, kind: type[T], name: str, where: str) -> T:
    """Like `optional_field`, and the field must be present."""
    checked = optional_field(value, kind, name, where)
    if checked is None:
        raise _refuse(where, name, "is missing")
    return checked


def body_of(response: Any, where: str) -> Any:
    """The parsed body of an SDK response; UnexpectedAnswer when the SDK could not map it."""
    body = getattr(response, "body", None)
    if body is None:
        raise _refuse(where, "body", "is missing or not an object")
    return body


def read_bounded(stream: IO[bytes], limit: int, where: str) -> bytes:
    """At most `limit` bytes of an answer (urllib responses); UnexpectedAnswer beyond, without
    reading the rest (the SDK calls are bounded by core/cloud/transport.py instead)."""
    body = stream.read(limit + 1)
    if len(body) > limit:
        raise UnexpectedAnswer(
            f"{where}: the answer is larger than {limit:,} bytes; no answer of this service is "
            "that large, so it was refused while reading: check the endpoint"
        )
    return body
