"""The official SDK stack, imported once, without the modules the provider never runs.

The Alibaba Cloud SDK modules import, at their top, libraries the provider's sync request path
never executes:

- `aiohttp` (`Tea.core`, `darabonba.core`, `darabonba.response`, `darabonba.utils.stream`):
  only the SDK's async functions use it; the provider calls the sync ones;
- `apscheduler` (`alibabacloud_credentials.provider.ecs_ram_role`): only that library's ECS RAM
  role provider starts a scheduler; the provider's `ecs_ram_role` credential plugin is its own;
- `cryptography` (`alibabacloud_tea_openapi.utils`, `alibabacloud_openapi_util.client`,
  `alibabacloud_darabonba_signature_util.signer`): only RSA request signing (ACS3-RSA-SHA256)
  uses it; the provider's requests are signed with HMAC;
- `websocket` (websocket-client, `darabonba.websocket`): only the SDK's WebSocket APIs use it;
  KMS, OOS and STS are plain HTTPS calls;
- `aiofiles` and `configparser` (`alibabacloud_credentials.provider`'s OIDC, profile and CLI
  profile providers): only the async file reads and the credentials library's own
  profile-file providers use them; the provider's credential plugins are its own;
- `charset_normalizer` (`requests`: only `Response.text` without a declared charset and
  `Response.apparent_encoding` use it; the SDK reads `Response.content`) and `idna` (aliased by
  `requests.packages`; requests and urllib3 import it again where they encode a non-ASCII host
  name). requests reads charset_normalizer's `__version__` at import to check it: the stand-in
  carries it, read from the installed distribution's metadata (`VERSIONED`). requests aliases
  under `requests.packages` only the modules loaded when it is imported, so the legacy paths of
  their submodules (`requests.packages.idna.core`, `requests.packages.chardet.api`) are not
  aliases any more; nothing in the SDK stack uses them.

Importing them cost ~17 MB and ~0.2-0.4 s on the first mount, while every mount of the first
wave after start waited for it (docs/performance.md); websocket, aiofiles and configparser were
another ~20 ms of the ~110 ms left and 0.6 MB, charset_normalizer and idna ~15 ms and ~3 MB.
Garbage collection is off while the SDK is imported: nearly everything the import creates lives
as long as the process, and the ~19 collections it triggered (6-7 ms, with `serve`'s modules
loaded) found almost nothing to free. `import_sdk()` (called before a mount
resolves its first credential, which is an SDK client) imports the SDK's modules while a
`DeferredModule` stands in `sys.modules` for each of them, then takes the stand-ins out
again: the SDK modules keep a stand-in that imports the real module the first time something
from it is used (called, or an attribute of it read), so the SDK's async and RSA paths still
work if anything calls them, and any later `import` elsewhere gets the real module. A name
the SDK's import reads from a stand-in (an annotation, a `from aiohttp import ClientResponse`)
is a `DeferredName` that does the same on first use. Only that import, on the thread running
it, gets DeferredNames: `sys.modules` is the process's, so another thread importing one of
these modules meanwhile gets the stand-in too, and every name it reads from it is the real
module's (a class it can subclass, name in an `except` clause or pass to `isinstance`).

The product SDKs' `models` packages (`alibabacloud_<product><version>.models`) import every model
of the product's API at once: KMS's 281 modules took ~55-90 ms and 3.2 MB on the first mount,
which uses a handful. `import_sdk()` also installs `LazyModelsFinder`: such a package whose
`__init__.py` only re-exports its submodules' names (`from ._get_secret_value_request import
GetSecretValueRequest`, checked on its syntax tree; anything else and it is imported as usual)
is a `LazyModels` module that imports a model's submodule the first time the name is used.
"""

from __future__ import annotations

import ast
import gc
import importlib
import importlib.abc
import importlib.machinery
import importlib.metadata
import importlib.util
import sys
import threading
import types
from collections.abc import Sequence
from typing import Any

__all__ = ["DEFERRED", "SDK_MODULES", "VERSIONED", "DeferredModule", "DeferredName", "LazyModels",
           "LazyModelsFinder", "import_sdk", "reexports"]

#: modules the SDK imports at its top and the provider's serving path never runs (see above)
DEFERRED = (
    "aiohttp",
    "apscheduler.schedulers.background",
    "cryptography.hazmat.backends",
    "cryptography.hazmat.primitives.asymmetric.padding",
    "cryptography.hazmat.primitives.hashes",
    "cryptography.hazmat.primitives.serialization",
    "websocket",
    "websocket._abnf",
    "aiofiles",
    "configparser",
    "charset_normalizer",
    "idna",
)
#: deferred modules whose `__version__` is read at import (by requests), with their distribution
VERSIONED = {"charset_normalizer": "charset-normalizer"}
#: the SDK modules imported with those deferred: between them they import every SDK module that
#: imports one of DEFERRED (tests/test_sdk_imports.py checks it after a real mount)
SDK_MODULES = ("alibabacloud_credentials.client", "alibabacloud_tea_openapi.client",
               "darabonba.core", "alibabacloud_gateway_pop.client")


class DeferredModule(types.ModuleType):
    """Stands for a module until something from it is used; then that use imports the module."""

    def __getattr__(self, name: str) -> Any:  # only called for names the stand-in does not have
        standing_in = sys.modules.get(self.__name__) is self
        if standing_in and _importer == threading.get_ident():
            # The SDK's import reading a name: it gets one that imports the module when used.
            if name.startswith("__"):
                # The import system's probes (`__path__` for a `from m import x`) must not
                # import it.
                raise AttributeError(name)
            return DeferredName(self, name)
        if name.startswith("__") and not standing_in:
            # A probe of an SDK module's global after the import (a repr, a debugger) does not
            # import the module either.
            real = sys.modules.get(self.__name__)
            if real is None:
                raise AttributeError(name)
            return getattr(real, name)
        # A use by the SDK's code at run time, or anything another thread does with the
        # stand-in it imported while it was in sys.modules: the real module's.
        return getattr(self.load(), name)

    def load(self) -> types.ModuleType:
        """The real module, imported now if it was not yet."""
        if sys.modules.get(self.__name__) is self:  # still standing in: used while importing
            del sys.modules[self.__name__]
        return importlib.import_module(self.__name__)


class DeferredName:
    """A name read from a `DeferredModule` before its module was imported: calling it or reading
    one of its attributes imports the module and uses the real object."""

    __slots__ = ("module", "name")

    def __init__(self, module: DeferredModule, name: str) -> None:
        self.module = module
        self.name = name

    def resolve(self) -> Any:
        return getattr(self.module.load(), self.name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.resolve()(*args, **kwargs)

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self.resolve(), attribute)

    def __repr__(self) -> str:
        return f"<deferred {self.module.__name__}.{self.name}>"


_lock = threading.Lock()
_imported = False
#: the thread running import_sdk()'s imports, while it does (the only one given DeferredNames)
_importer: int | None = None


def import_sdk() -> None:
    """Import SDK_MODULES with DEFERRED standing in (once per process; cheap afterwards)."""
    global _imported
    if _imported:
        return
    with _lock:
        if _imported:
            return
        if not any(isinstance(finder, LazyModelsFinder) for finder in sys.meta_path):
            sys.meta_path.insert(0, LazyModelsFinder())  # once, even if an import failed
        collecting = gc.isenabled()
        # Nearly all the import creates lives as long as the process: collections during it
        # (~19, 6-7 ms) would walk it and free almost nothing.
        gc.disable()
        try:
            _import_with_stand_ins()
        finally:
            if collecting:
                gc.enable()
        # The SDK's modules, classes and functions live as long as the process: moved to the
        # permanent generation, no later full collection walks them again. Without it the first
        # full collection after start (~25-30 ms with the SDK loaded) fell inside the mounts
        # that followed: one of ten cold 10-object mounts took ~65 ms instead of ~37 ms
        # (docs/performance.md). The few reference cycles the import leaves behind (~200
        # objects, ~55 kB: enum classes `ssl` and `signal` build) and what other threads had in
        # flight are frozen with them: a one-time, bounded amount, never collected.
        gc.freeze()
        _imported = True


def _import_with_stand_ins() -> None:
    """Import SDK_MODULES while the stand-ins are in sys.modules, then take them out."""
    global _importer
    stand_ins = {}
    for name in DEFERRED:
        # Already imported by something else, or not installed: nothing to defer.
        if name not in sys.modules and _installed(name.partition(".")[0]):
            stand_in = _stand_in(name)
            if stand_in is not None:
                stand_ins[name] = stand_in
    _importer = threading.get_ident()
    sys.modules.update(stand_ins)
    try:
        for module in SDK_MODULES:
            importlib.import_module(module)
    finally:
        for name, stand_in in stand_ins.items():
            if sys.modules.get(name) is stand_in:
                del sys.modules[name]
        _importer = None


def _stand_in(name: str) -> DeferredModule | None:
    """The stand-in for `name`; None when its version is read at import and cannot be known
    without importing it (then it is imported as usual)."""
    stand_in = DeferredModule(name)
    distribution = VERSIONED.get(name)
    if distribution is not None:
        try:
            version = importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            return None
        if not version:  # metadata without a Version field: requests would warn
            return None
        stand_in.__dict__["__version__"] = version
    return stand_in


def _installed(package: str) -> bool:
    """Whether a top-level package can be imported (without importing it)."""
    return importlib.util.find_spec(package) is not None


class LazyModels(types.ModuleType):
    """A product SDK's `models` package whose models are imported one by one, on first use."""

    def __getattr__(self, name: str) -> Any:  # only called for names not imported yet
        where = self._submodules().get(name)
        if where is None:
            raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")
        submodule, original = where
        value = getattr(importlib.import_module(f"{self.__name__}.{submodule}"), original)
        setattr(self, name, value)  # later uses are a plain attribute lookup
        return value

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *self._submodules()})

    def _submodules(self) -> dict[str, tuple[str, str]]:
        """{name: (submodule, its name there)}, kept by the finder in the module's spec."""
        spec = self.__dict__.get("__spec__")
        return spec.loader_state if spec is not None else {}


class LazyModelsFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds `alibabacloud_*.models` packages that only re-export their submodules' names and
    loads them as `LazyModels` (the names and their submodules are the spec's loader_state)."""

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: types.ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if not (fullname.startswith("alibabacloud_") and fullname.endswith(".models")):
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.origin is None or spec.submodule_search_locations is None:
            return None
        names = reexports(spec.origin)
        if not names:
            return None
        spec.loader = self
        spec.loader_state = names
        return spec

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return LazyModels(spec.name)

    def exec_module(self, module: types.ModuleType) -> None:
        """Nothing to run: the names are imported when used (`import *` uses them all)."""
        spec = module.__spec__
        module.__dict__["__all__"] = sorted(spec.loader_state if spec is not None else ())


def reexports(path: str) -> dict[str, tuple[str, str]] | None:
    """{name: (submodule, its name there)} when the package `__init__.py` at `path` does nothing but
    `from .submodule import names` (besides a docstring, `from __future__` and `__all__`);
    None otherwise."""
    try:
        with open(path, encoding="utf-8") as source:
            tree = ast.parse(source.read(), path)
    except (OSError, SyntaxError, ValueError):
        return None
    names: dict[str, tuple[str, str]] = {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
            if any(alias.name == "*" for alias in node.names):
                return None
            names.update((alias.asname or alias.name, (node.module, alias.name))
                         for alias in node.names)
        elif not (isinstance(node, ast.ImportFrom) and node.module == "__future__"
                  or isinstance(node, ast.Assign)
                  and [getattr(t, "id", None) for t in node.targets] == ["__all__"]
                  or isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)):
            return None
    return names
