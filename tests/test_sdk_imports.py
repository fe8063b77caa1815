"""core/cloud/sdk_imports.py: `serve` mounts without importing what the SDK imports but the
provider never runs (aiohttp, apscheduler, cryptography, websocket, aiofiles, configparser,
charset_normalizer, idna), and those SDK paths still work when
something does call them (the stand-ins import the real module on first use); a product SDK's
models are imported one by one as they are used.

The serve checks run in a fresh interpreter: what matters is which modules a process has loaded.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from ack_secrets_provider.core.cloud.sdk_imports import (
    DEFERRED,
    LazyModels,
    LazyModelsFinder,
    reexports,
)
from ack_secrets_provider.core.emulator import testing as t
from ack_secrets_provider.core.emulator.testing import EmulatorHandle

#: what the deferred modules' first real use loads (their heavy parts)
HEAVY = ("aiohttp.client", "apscheduler.schedulers.base", "cryptography.hazmat.bindings._rust",
         "websocket._app", "aiofiles.threadpool", "charset_normalizer.api", "idna.core")

SERVE_AND_MOUNT = """
import json, os, signal, sys, threading, time
from ack_secrets_provider.core import cli
from ack_secrets_provider.core.server.driver_client import ProviderClient, driver_attributes

volume, endpoint, watched = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
socket = os.path.join(volume, "alibabacloud.sock")
main = threading.main_thread().ident

def probe():
    try:
        while not os.path.exists(socket):
            time.sleep(0.01)
        answer = ProviderClient(socket).mount(driver_attributes({"objects": (
            "- objectName: app/config\\n  objectType: kms\\n"
            "- objectName: app-smtp\\n  objectType: oos\\n")}), timeout=30)
        print(json.dumps({"files": [f.path for f in answer.files],
                          "loaded": [m for m in watched if m in sys.modules]}), flush=True)
    finally:
        signal.pthread_kill(main, signal.SIGTERM)  # serve waits for it in the main thread

threading.Thread(target=probe, daemon=True).start()
sys.exit(cli.main(["serve", "--provider-volume", volume, "--region", "cn-hangzhou",
                   "--endpoint-override", f"kms={endpoint}",
                   "--endpoint-override", f"oos={endpoint}", "--healthz-port", "0",
                   "--metrics-port", "0"]))
"""

USE_THE_DEFERRED_PATHS = """
import asyncio, json, sys
from ack_secrets_provider.core.cloud.sdk_imports import import_sdk

import warnings
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import_sdk()  # requests checks charset_normalizer's version: the stand-in has it
repr(sys.modules["Tea.core"].aiohttp)  # a probe of a stand-in (a repr, a debugger) is no use
before = [m for m in json.loads(sys.argv[2]) if m in sys.modules]

# the SDK's async request path (aiohttp, through Tea/darabonba's stand-in), against the emulator
from alibabacloud_credentials.client import Client as CredentialClient
from alibabacloud_credentials.provider.static_ak import StaticAKCredentialsProvider
from alibabacloud_kms20160120 import models
from alibabacloud_kms20160120.client import Client
from alibabacloud_tea_openapi.utils_models import Config
credential = CredentialClient(provider=StaticAKCredentialsProvider(
    access_key_id=sys.argv[3], access_key_secret=sys.argv[4]))
client = Client(Config(endpoint=sys.argv[1], protocol="http", credential=credential,
                       region_id="cn-hangzhou"))
answer = asyncio.run(client.get_secret_value_async(
    models.GetSecretValueRequest(secret_name="app/config")))

# RSA signing (cryptography, through the signer's stand-ins)
from alibabacloud_darabonba_signature_util.signer import Signer
signature = Signer.sha256with_rsasign("string to sign", sys.argv[5])

# the credentials library's async profile-file read (aiofiles and configparser stand-ins)
from alibabacloud_credentials.provider import profile
ini = asyncio.run(profile._load_ini_async(sys.argv[6]))

# the SDK's WebSocket module (websocket-client through its stand-ins)
from darabonba import websocket as dara_websocket
opcode = dara_websocket.ABNF.OPCODE_BINARY
app_class = dara_websocket.websocket.WebSocketApp

# requests' charset detection (charset_normalizer) and international host names (idna)
import requests
from requests.models import PreparedRequest
response = requests.Response()
response._content = "Grüße aus Köln, ça va très bien: déjà vu".encode("cp1252")
detected = response.apparent_encoding
host = PreparedRequest._get_idna_encoded_host("bücher.example")
aliased = requests.packages.idna.encode("köln").decode()

import aiohttp
print(json.dumps({"before": before, "value": answer.body.secret_data,
                  "warnings": [str(w.message) for w in caught], "detected": detected,
                  "host": host, "aliased": aliased,
                  "real_aiohttp": type(aiohttp.ClientTimeout(total=1)).__module__,
                  "signature": signature.hex(), "ini": ini, "opcode": opcode,
                  "websocket_app": f"{app_class.__module__}.{app_class.__name__}"}))
"""


def _run(script: str, *args: str) -> dict[str, Any]:
    result = subprocess.run([sys.executable, "-c", script, *args], capture_output=True,
                            text=True, timeout=120,
                            env={**os.environ, "ACCESS_KEY_ID": t.ACCESS_KEY_ID,
                                 "SECRET_ACCESS_KEY": t.ACCESS_KEY_SECRET})
    assert result.returncode == 0, result.stderr[-3000:]
    answer: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return answer


def test_serve_mounts_without_importing_what_the_sdk_never_runs(
        emulator: EmulatorHandle, tmp_path: Path) -> None:
    used = ["alibabacloud_kms20160120.client",
            "alibabacloud_kms20160120.models._get_secret_value_request",
            "alibabacloud_oos20190601.client"]
    unused = [  # models of other APIs
        "alibabacloud_kms20160120.models._encrypt_request",
        "alibabacloud_oos20190601.models._create_template_request"]
    watched = [*DEFERRED, *HEAVY, *used, *unused]
    answer = _run(SERVE_AND_MOUNT, str(tmp_path), emulator.http_url, json.dumps(watched))
    assert sorted(answer["files"]) == ["app-smtp", "app_config"]
    # the mount went through the SDK, and none of the deferred modules or unused models was
    # imported
    assert answer["loaded"] == used


def test_the_sdk_import_leaves_its_objects_out_of_later_collections() -> None:
    """performance.md: no collection runs while the SDK is imported (its objects live as long as
    the process), and afterwards they are in the permanent generation, so a full collection
    during a mount does not walk them; collection is back on."""
    answer = _run("""
import gc, json
from ack_secrets_provider.core.cloud.sdk_imports import import_sdk
collections = []
gc.callbacks.append(lambda phase, info: phase == "start" and collections.append(info))
before = gc.get_freeze_count()
import_sdk()
print(json.dumps({"before": before, "after": gc.get_freeze_count(),
                  "collections": len(collections), "enabled": gc.isenabled()}))
""")
    assert answer["before"] == 0
    assert answer["after"] > 10_000  # the SDK's objects, and the provider's own before them
    assert answer["collections"] == 0  # 38 in this bare interpreter without gc.disable()
    assert answer["enabled"]


def test_the_sdk_import_leaves_collection_off_when_it_was_off() -> None:
    """Collection is the process's setting: import_sdk() restores it, it does not turn it on."""
    answer = _run("""
import gc, json
from ack_secrets_provider.core.cloud.sdk_imports import import_sdk
gc.disable()
import_sdk()
print(json.dumps({"enabled": gc.isenabled()}))
""")
    assert answer == {"enabled": False}


def test_a_failed_sdk_import_turns_collection_back_on_and_takes_the_stand_ins_out() -> None:
    """An SDK module missing (a broken install): the import fails loudly, and the process is
    left as it was: collection on, no stand-in in sys.modules, the next call tries again."""
    answer = _run("""
import gc, json, sys
from ack_secrets_provider.core.cloud import sdk_imports
sdk_imports.SDK_MODULES = (*sdk_imports.SDK_MODULES, "alibabacloud_no_such_sdk_module")
try:
    sdk_imports.import_sdk()
    raised = None
except ModuleNotFoundError as exc:
    raised = exc.name
stand_ins = [name for name in sdk_imports.DEFERRED
             if isinstance(sys.modules.get(name), sdk_imports.DeferredModule)]
sdk_imports.SDK_MODULES = sdk_imports.SDK_MODULES[:-1]
sdk_imports.import_sdk()
print(json.dumps({"raised": raised, "enabled": gc.isenabled(), "stand_ins": stand_ins,
                  "retried": gc.get_freeze_count() > 10_000}))
""")
    assert answer == {"raised": "alibabacloud_no_such_sdk_module", "enabled": True,
                      "stand_ins": [], "retried": True}


def test_a_deferred_module_whose_version_cannot_be_read_is_imported_as_usual() -> None:
    """requests reads charset_normalizer's `__version__` at import and warns without it: when
    the distribution's metadata cannot give it, the module is imported, not stood in for."""
    answer = _run("""
import json, sys, warnings
from ack_secrets_provider.core.cloud import sdk_imports
sdk_imports.VERSIONED["charset_normalizer"] = "no-such-distribution"
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    sdk_imports.import_sdk()
import requests
print(json.dumps({"chardet": type(requests.compat.chardet).__name__,
                  "idna": type(requests.packages.idna).__name__,
                  "warnings": [str(w.message) for w in caught]}))
""")
    assert answer == {"chardet": "module", "idna": "DeferredModule", "warnings": []}


def test_the_deferred_modules_load_when_the_sdk_uses_them(
        emulator: EmulatorHandle, tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM,
                            serialization.PrivateFormat.TraditionalOpenSSL,
                            serialization.NoEncryption()).decode()
    ini = tmp_path / "credentials.ini"
    ini.write_text("[default]\ntype = access_key\n")
    answer = _run(USE_THE_DEFERRED_PATHS, emulator.address, json.dumps([*DEFERRED, *HEAVY]),
                  t.ACCESS_KEY_ID, t.ACCESS_KEY_SECRET, pem, str(ini))
    assert answer["before"] == []
    assert answer["warnings"] == []
    # requests detected a charset and encoded international names with the real modules
    assert answer["detected"] and answer["detected"] != "ascii"
    assert answer["host"] == "xn--bcher-kva.example"
    assert answer["aliased"] == "xn--kln-sna"
    # the profile file was read (aiofiles, configparser); websocket-client's names are its own
    assert answer["ini"] == {"default": {"type": "access_key"}}
    assert answer["opcode"] == 0x2
    assert answer["websocket_app"] == "websocket._app.WebSocketApp"
    # the async path (aiohttp) read the secret; the RSA signature (cryptography) verifies
    assert answer["value"] == '{"user": "app", "password": "p@ss"}'
    assert answer["real_aiohttp"].startswith("aiohttp.")
    key.public_key().verify(bytes.fromhex(answer["signature"]), b"string to sign",
                            padding.PKCS1v15(), hashes.SHA256())


#: a class each deferred module has (a deferred module not listed is only imported)
A_CLASS = {"aiohttp": "ClientError", "apscheduler.schedulers.background": "BackgroundScheduler",
           "cryptography.hazmat.primitives.hashes": "SHA256",
           "cryptography.hazmat.primitives.asymmetric.padding": "PKCS1v15",
           "cryptography.hazmat.primitives.serialization": "BestAvailableEncryption",
           "configparser": "Error", "websocket": "WebSocketException",
           "charset_normalizer": "CharsetMatch", "idna": "IDNAError"}

IMPORT_ELSEWHERE_DURING_THE_SDK_IMPORT = """
import importlib, importlib.machinery, json, sys, threading
from ack_secrets_provider.core.cloud.sdk_imports import DEFERRED, import_sdk

classes = json.loads(sys.argv[1])
SDK = ("alibabacloud_", "darabonba", "Tea")
in_window, used = threading.Event(), threading.Event()

class HoldTheSdkImport:
    # Holds import_sdk() inside its window (stand-ins in sys.modules) until the other thread is
    # done: in the first SDK module's execution (find_spec runs under the global import lock).
    def find_spec(self, fullname, path=None, target=None):
        if threading.current_thread().name != "sdk" or not fullname.startswith(SDK):
            return None
        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        run = spec.loader.exec_module
        def exec_module(module):
            in_window.set()
            used.wait(30)
            run(module)
        spec.loader.exec_module = exec_module
        return spec

def elsewhere(seen):
    in_window.wait(30)
    try:
        for name in DEFERRED:
            module = importlib.import_module(name)
            entry = seen[name] = {"stand_in": type(module).__name__ == "DeferredModule"}
            if name in classes:
                cls = getattr(module, classes[name])
                entry["class"] = isinstance(cls, type)
                try:
                    entry["isinstance"] = isinstance(None, cls)
                    entry["subclass"] = type("Mine", (cls,), {}).__mro__[1] is cls
                    try:
                        raise ValueError("not it")
                    except cls if issubclass(cls, BaseException) else ():
                        pass
                except ValueError:
                    entry["except"] = "passes it on"
                except TypeError as exc:
                    entry["error"] = str(exc)
    finally:
        used.set()

sys.meta_path.insert(0, HoldTheSdkImport())
seen = {}
threads = [threading.Thread(target=import_sdk, name="sdk"),
           threading.Thread(target=elsewhere, args=(seen,))]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join(60)
print(json.dumps(seen))
"""


def test_an_import_elsewhere_during_the_sdk_import_gets_the_real_names() -> None:
    """sys.modules is the process's: another thread (a plugin, the kube client, a scrape)
    importing a deferred module while import_sdk() runs gets the stand-in, and every name it
    reads from it is the real module's: a class it can name in an `except` clause (which
    passes other errors on), subclass and pass to isinstance."""
    seen = _run(IMPORT_ELSEWHERE_DURING_THE_SDK_IMPORT, json.dumps(A_CLASS))
    assert set(seen) == set(DEFERRED)
    assert seen["aiohttp"]["stand_in"]  # the window was hit
    for name in set(DEFERRED) & set(A_CLASS):
        assert seen[name] == {"stand_in": seen[name]["stand_in"], "class": True,
                              "isinstance": False, "subclass": True,
                              "except": "passes it on"}, name


MODELS = """\
# -*- coding: utf-8 -*-
from __future__ import annotations

from ._get_thing_request import GetThingRequest
from ._get_thing_response import (GetThingResponse, GetThingResponseBody as Body)

__all__ = [GetThingRequest, GetThingResponse]
"""


def _product(root: Path, name: str, init: str) -> Path:
    """A fake product SDK `name` with a models package (`init`) of two submodules."""
    models = root / name / "models"
    models.mkdir(parents=True)
    (root / name / "__init__.py").write_text("")
    (models / "__init__.py").write_text(init)
    (models / "_get_thing_request.py").write_text("class GetThingRequest:\n    pass\n")
    (models / "_get_thing_response.py").write_text(
        "class GetThingResponse:\n    pass\n\n\nclass GetThingResponseBody:\n    pass\n")
    return models


def _load(root: Path, name: str) -> types.ModuleType | None:
    spec = LazyModelsFinder().find_spec(f"{name}.models", [str(root / name)])
    if spec is None:
        return None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)  # what the import system does
    spec.loader.exec_module(module)
    return module


def test_a_models_package_that_only_reexports_is_imported_name_by_name(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _product(tmp_path, "alibabacloud_fake20990101", MODELS)
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("alibabacloud_fake20990101", "alibabacloud_fake20990101.models"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    models = _load(tmp_path, "alibabacloud_fake20990101")
    assert isinstance(models, LazyModels)
    monkeypatch.setitem(sys.modules, "alibabacloud_fake20990101.models", models)
    assert {"GetThingRequest", "GetThingResponse", "Body"} <= set(dir(models))
    assert "alibabacloud_fake20990101.models._get_thing_request" not in sys.modules
    request = models.GetThingRequest
    assert request.__module__ == "alibabacloud_fake20990101.models._get_thing_request"
    assert models.Body.__name__ == "GetThingResponseBody"  # an `as` name
    assert "alibabacloud_fake20990101.models._get_thing_request" in sys.modules
    with pytest.raises(AttributeError, match="no attribute 'Missing'"):
        _ = models.Missing
    star: dict[str, Any] = {}
    exec("from alibabacloud_fake20990101.models import *", star)  # noqa: S102 - a fixed text
    assert {"GetThingRequest", "GetThingResponse", "Body"} <= set(star)
    for name in [m for m in sys.modules if m.startswith("alibabacloud_fake20990101")]:
        monkeypatch.delitem(sys.modules, name)


@pytest.mark.parametrize("extra", [
    "X = 1\n",  # any statement that does something
    "from ..other import Thing\n",  # a name from outside the package
    "from ._get_thing_request import *\n",  # names the syntax tree does not show
    "import os\n",
])
def test_a_models_package_that_does_anything_else_is_imported_as_usual(
        tmp_path: Path, extra: str) -> None:
    models = _product(tmp_path, "alibabacloud_fake20990102", MODELS + extra)
    assert reexports(str(models / "__init__.py")) is None
    assert _load(tmp_path, "alibabacloud_fake20990102") is None


def test_only_the_sdks_models_packages_are_considered(tmp_path: Path) -> None:
    _product(tmp_path, "someone_else", MODELS)
    assert LazyModelsFinder().find_spec("someone_else.models", [str(tmp_path / "someone_else")]) \
        is None
