"""File names: pathTranslation, the driver's own path rules, and file permissions.

Everything here is pure. The path rules are the ones the Secrets Store CSI driver (v1.6) applies to
every `File.path` it receives; a path that breaks them would fail the whole mount on the node, so
we refuse it earlier with a message that names the object.
"""

from __future__ import annotations

import json
import posixpath
import re
from dataclasses import dataclass

MAX_PATH_LENGTH = 4096
MAX_ELEMENT_LENGTH = 255

#: pathTranslation value that keeps `/` as a directory separator
_KEEP_VALUES = frozenset({"false"})


@dataclass(frozen=True)
class PathTranslation:
    """How `/` in an object name or alias becomes part of a file name.

    `replacement` is the single character that replaces `/`, or None to keep sub-directories.
    """

    replacement: str | None = "_"

    def apply(self, name: str) -> str:
        if self.replacement is None:
            # As the existing provider does: `/` makes sub-directories, a leading `/` is dropped.
            return name.lstrip("/")
        return name.replace("/", self.replacement)


#: the default and "keep sub-directories": what nearly every mount asks for, built once
_REPLACE_WITH_UNDERSCORE = PathTranslation("_")
_KEEP_DIRECTORIES = PathTranslation(None)


def parse_path_translation(value: str | None) -> PathTranslation:
    """Parse the SecretProviderClass `pathTranslation` parameter.

    Unset or "" → `_`; `False` in any case → keep sub-directories; any other single character
    replaces `/`. Raises ValueError with a user-facing explanation otherwise.
    """
    if value is None or value == "":
        return _REPLACE_WITH_UNDERSCORE
    if value.lower() in _KEEP_VALUES:
        return _KEEP_DIRECTORIES
    if len(value) != 1:
        raise ValueError(
            f"pathTranslation {value!r} must be a single character that replaces '/' in file "
            "names (for example \"_\" or \"-\"), or \"False\" to keep sub-directories"
        )
    if value == "/":
        raise ValueError(
            "pathTranslation \"/\" would not translate anything; use \"False\" to keep "
            "sub-directories, or another single character such as \"_\""
        )
    if not value.isprintable() or value in {"\\", "\x00"} or value.isspace():
        raise ValueError(
            f"pathTranslation {value!r} must be a printable, non-space character such as \"_\""
        )
    return PathTranslation(value)


def _byte_length(text: str) -> int:
    """Length as the driver (Go) and the kernel count it: UTF-8 bytes, not characters."""
    return len(text.encode("utf-8", "surrogatepass"))


def driver_path_problem(path: str) -> str | None:
    """Why the driver would refuse `path` as a File.path, or None when it is acceptable.

    Mirrors the driver's checks (atomic_writer.go validatePayload/validatePath): non-empty, not
    `.`, relative, at most 4096 bytes, no `..` element, the first element not starting with
    `..`, each element at most 255 bytes, and `Clean(path) == path`. Lengths are UTF-8 bytes
    because Go's `len()` counts bytes: 100 Chinese characters are 300 bytes. A NUL character is
    refused too: no file system accepts it.
    """
    if path == "":
        return "the file name is empty"
    if path == ".":
        return "the file name '.' is the volume itself, not a file"
    if "\x00" in path:
        return "the file name contains a NUL character"
    if path.startswith("/"):
        return "the file name must be relative (it starts with '/')"
    if _byte_length(path) > MAX_PATH_LENGTH:
        return f"the file name is longer than {MAX_PATH_LENGTH} bytes"
    elements = path.split("/")
    for element in elements:
        if element == "..":
            return "the file name must not contain a '..' element"
        if _byte_length(element) > MAX_ELEMENT_LENGTH:
            return (
                f"the path element {element[:20]!r}... is longer than {MAX_ELEMENT_LENGTH} bytes"
            )
    if elements[0].startswith(".."):
        return (
            "the file name must not start with '..' (the driver keeps its own '..data' "
            "entries there)"
        )
    if posixpath.normpath(path) != path:
        return (
            "the file name is not in clean form (no './', '//', trailing '/' or '.' elements)"
        )
    return None


_OCTAL = re.compile(r"0[oO]?([0-7]{1,4})")
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,2}")


def parse_file_permission(value: str) -> int:
    """Parse a `filePermission`, accepting exactly these forms (no spaces, no sign):

    - octal with a leading zero: `"0440"`, `"0o440"`, `"00440"` (at most 4 octal digits);
    - a decimal number `1`..`511`, the Go/driver form (`"288"` is 0440) and `"0"`;
    - the value must be between 0 and 0777.

    Raises ValueError with a user-facing explanation otherwise.
    """
    match = _OCTAL.fullmatch(value)
    if match:
        mode = int(match.group(1), 8)
    elif _DECIMAL.fullmatch(value):
        mode = int(value, 10)
    else:
        raise ValueError(
            f"filePermission {value!r} is not a file mode; write it in octal with a leading "
            "zero and quotes, for example \"0440\" or \"0644\""
        )
    if mode > 0o777:
        hint = ""
        if _DECIMAL.fullmatch(value) and all(c in "01234567" for c in value):
            hint = f" (did you mean \"0{value}\"?)"
        raise ValueError(
            f"filePermission {value!r} is out of range: a mode is between 0000 and 0777{hint}"
        )
    return mode


def _not_a_mode(value: str) -> ValueError:
    return ValueError(
        f"permission {value[:40]!r} from the driver is not a decimal file mode such as "
        "\"420\"; this is a driver/provider version mismatch"
    )


def parse_driver_permission(value: str) -> int:
    """Parse MountRequest.permission: JSON of a Go file mode, `420` (decimal 0644).

    The driver sends the JSON number; a JSON string of it (`"420"`) is accepted too, which the
    official provider refused (docs/migration.md lists the difference).
    Raises ValueError when it is not a decimal number between 0 and 511.
    """
    try:
        decoded = json.loads(value)
    except (ValueError, RecursionError):
        raise _not_a_mode(value) from None
    if isinstance(decoded, str):
        text = decoded
    elif isinstance(decoded, int) and not isinstance(decoded, bool):
        text = value.strip(" \t\r\n")  # the number as written: 420, not 420.0, 4.2e2 or -0
    else:
        raise _not_a_mode(value)
    if not _DECIMAL.fullmatch(text):
        raise _not_a_mode(value)
    mode = int(text, 10)
    if mode > 0o777:
        raise ValueError(f"permission {value!r} from the driver is above 511 (0777)")
    return mode
