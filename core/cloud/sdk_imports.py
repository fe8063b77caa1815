"""The official SDK stack, imported once, without the modules the provider never runs.

The Alibaba Cloud SDK modules import, at their top, libraries the provider's sync request path
never executes:

- `aiohttp` (`Tea.core`, `darabonba.core`, `darabonba.response`, `darabonba.utils.stream`):
  only the SDK's async functions use it; the provider calls the sync ones;
- `apscheduler` (`alibabacloud_credentials.provider.ecs_ram_role`): only that library's ECS RAM
  role provider starts a scheduler; the provider's `ecs_ram_role` credential plugin is its own;
- `cryptography` (`alibabacloud_tea_openapi.utils`, `alibabacloud_openapi_util.client`,
  `alibabacloud_darabonba_signature_util.signer`): only RSA request signing (ACS3-RSA-SHA256)
  uses it; the provider's requests are signed with HMAC.

Importing them cost ~25 MB and ~0.2-0.6 s on the first mount, while every mount of the first
wave after start waited for it (docs/performance.md). `import_sdk()` (called before a mount
first uses the SDK) imports the SDK's modules while a `DeferredModule` stands in `sys.modules`
for each of them, then takes the stand-ins out again: the SDK modules keep a stand-in that
imports the real module the first time something from it is used (called, or an attribute of
it read), so the SDK's async and RSA paths still work if anything calls them, and any later
`import` elsewhere gets the real module. A name read from a stand-in before that (an annotation,
a `from aiohttp import ClientResponse`) is a `DeferredName` that does the same on first use.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import types
from typing import Any

__all__ = ["DEFERRED", "SDK_MODULES", "DeferredModule", "DeferredName", "import_sdk"]

#: modules the SDK imports at its top and the provider's serving path never runs (see above)
DEFERRED = (
    "aiohttp",
    "apscheduler.schedulers.background",
    "cryptography.hazmat.backends",
    "cryptography.hazmat.primitives.asymmetric.padding",
    "cryptography.hazmat.primitives.hashes",
    "cryptography.hazmat.primitives.serialization",
)
#: the SDK modules imported with those deferred: between them they import every SDK module that
#: imports one of DEFERRED (tests/test_sdk_imports.py checks it after a real mount)
SDK_MODULES = ("alibabacloud_credentials.client", "alibabacloud_tea_openapi.client",
               "darabonba.core", "alibabacloud_gateway_pop.client")


class DeferredModule(types.ModuleType):
    """Stands for a module until something from it is used; then that use imports the module."""

    def __getattr__(self, name: str) -> Any:  # only called for names the stand-in does not have
        if name.startswith("__"):
            # The import system's probes (`__path__` for a `from m import x`) must not import it.
            raise AttributeError(name)
        real = sys.modules.get(self.__name__)
        if real is None or real is self:
            return DeferredName(self, name)
        return getattr(real, name)

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


def import_sdk() -> None:
    """Import SDK_MODULES with DEFERRED standing in (once per process; cheap afterwards)."""
    global _imported
    if _imported:
        return
    with _lock:
        if _imported:
            return
        stand_ins = {}
        for name in DEFERRED:
            # Already imported by something else, or not installed: nothing to defer.
            if name not in sys.modules and _installed(name.partition(".")[0]):
                stand_ins[name] = DeferredModule(name)
        sys.modules.update(stand_ins)
        try:
            for module in SDK_MODULES:
                importlib.import_module(module)
        finally:
            for name, stand_in in stand_ins.items():
                if sys.modules.get(name) is stand_in:
                    del sys.modules[name]
        _imported = True


def _installed(package: str) -> bool:
    """Whether a top-level package can be imported (without importing it)."""
    return importlib.util.find_spec(package) is not None
