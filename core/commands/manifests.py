"""Reading Kubernetes manifests: files of one or many YAML documents, or `-` for stdin.

Documents are read with PyYAML's safe loader, which types scalars the way `kubectl apply` does
(`true` is a boolean, `0755` a number): that is what lets `lint` say which parameter the API
server would refuse because it is not a string.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

API_GROUP = "secrets-store.csi.x-k8s.io"
API_VERSIONS = (f"{API_GROUP}/v1", f"{API_GROUP}/v1alpha1")
KIND = "SecretProviderClass"
PROVIDER = "alibabacloud"


class ManifestError(Exception):
    """The file cannot be read or is not YAML; the message says where and why."""

    def __init__(self, message: str, *, document: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.document = document


@dataclass(frozen=True)
class Document:
    """One YAML document of a file; `index` counts from 1 as people count documents."""

    index: int
    data: Any
    #: position in a `kind: List` (as `kubectl get -o yaml` prints several objects), from 1
    item: int | None = None

    @property
    def kind(self) -> str | None:
        kind = self.data.get("kind") if isinstance(self.data, dict) else None
        return kind if isinstance(kind, str) else None

    @property
    def name(self) -> str | None:
        meta = self.data.get("metadata") if isinstance(self.data, dict) else None
        name = meta.get("name") if isinstance(meta, dict) else None
        return name if isinstance(name, str) and name else None

    @property
    def provider(self) -> object:
        spec = self.data.get("spec") if isinstance(self.data, dict) else None
        return spec.get("provider") if isinstance(spec, dict) else None

    def describe(self) -> str:
        label = f"document {self.index}"
        if self.item is not None:
            label += f", item {self.item}"
        if self.kind and self.name:
            return f"{label} ({self.kind} {self.name})"
        return label


def read_text(path: str) -> str:
    """The text of `path`, or of stdin for `-`; ManifestError when it cannot be read."""
    try:
        if path == "-":
            return sys.stdin.read()
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ManifestError("no such file") from None
    except IsADirectoryError:
        raise ManifestError("a directory; pass the YAML files themselves") from None
    except UnicodeDecodeError:
        raise ManifestError("not UTF-8 text") from None
    except OSError as exc:
        raise ManifestError(f"cannot be read: {exc.strerror}") from None


def documents(text: str) -> Iterator[Document]:
    """Every non-empty document of `text`; raises ManifestError at the first YAML error."""
    index = 0
    loader = yaml.safe_load_all(text)
    while True:
        index += 1
        try:
            data = next(loader)
        except StopIteration:
            return
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(exc, "problem", None) or "syntax error"
            raise ManifestError(f"not valid YAML{where}: {problem}", document=index) from None
        except ValueError as exc:  # an unquoted 2024-02-30: PyYAML's date raises, not YAMLError
            raise ManifestError(f"not valid YAML: a value written as a date or time is not one "
                                f"({exc}); quote it to keep it text", document=index) from None
        except RecursionError:  # PyYAML recurses once per level
            raise ManifestError("not valid YAML: nested too deeply to be read; check what wrote "
                                "this file", document=index) from None
        if data is None:
            continue
        items = data.get("items") if isinstance(data, dict) else None
        if isinstance(data, dict) and str(data.get("kind", "")).endswith("List") and (
            isinstance(items, list)
        ):
            for number, item in enumerate(items, start=1):
                yield Document(index, item, number)
        else:
            yield Document(index, data)


def find_spc(text: str, name: str | None = None) -> Document:
    """The alibabacloud SecretProviderClass of `text` (the one called `name` if given)."""
    found = [doc for doc in documents(text)
             if doc.kind == KIND and doc.provider == PROVIDER
             and (name is None or doc.name == name)]
    if not found:
        wanted = f" named {name!r}" if name else ""
        raise ManifestError(f"no SecretProviderClass{wanted} with spec.provider "
                            f"{PROVIDER!r} found")
    if len(found) > 1:
        names = ", ".join(repr(doc.name) for doc in found)
        raise ManifestError(f"several alibabacloud SecretProviderClasses ({names}); choose "
                            "one with --spc-name")
    return found[0]
