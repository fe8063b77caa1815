"""`ack-secrets-provider demo`: the whole job on one machine, against the loopback emulator.

Starts the emulator with the sample data and the provider on a temporary socket, mounts the sample
SecretProviderClass exactly as the driver would, writes the files into `./demo-mount/` the way the
driver does (atomic `..data` swap), prints files, sizes, modes and versions, then rotates one
secret in the emulator, mounts again and shows the version change. Nothing outside loopback is
contacted and no process is left behind.

The sample SecretProviderClass and emulator data ship inside the package (`demo_data/`, the same
files as `examples/` in the repository), so the demo runs from any folder after `pip install`.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from importlib.resources import files
from pathlib import Path
from types import MappingProxyType

import yaml

from ack_secrets_provider.core.cloud.endpoints import EndpointOverrides
from ack_secrets_provider.core.commands.atomic_writer import (
    FileToWrite,
    UnsafeTarget,
    check_target,
    write_atomically,
)
from ack_secrets_provider.core.mount.spec import ObjectSpec, parse_mount_request
from ack_secrets_provider.core.plugins.host import (
    BackendHost,
    backend_classes,
    endpoint_services,
)
from ack_secrets_provider.core.proto import service_pb2
from ack_secrets_provider.core.server.driver_client import (
    PodRef,
    driver_attributes,
    running_provider,
)
from ack_secrets_provider.core.settings import ProviderSettings

#: the value the demo rotates its first object to
ROTATED_VALUE = "db-password-v3"
#: the sample files inside the installed package; examples/ in the repository holds copies
DATA = files("ack_secrets_provider.core.commands") / "demo_data"
SPC_FILE, EMULATOR_DATA_FILE = "secretproviderclass.yaml", "emulator-data.yaml"


def _load_spc(text: str) -> tuple[str, dict[str, str]]:
    document = yaml.safe_load(text)
    return document["metadata"]["name"], {
        key: str(value) for key, value in document["spec"]["parameters"].items()
    }


def _table(response: service_pb2.MountResponse, previous: dict[str, str] | None = None) -> str:
    versions = {item.id: item.version for item in response.object_version}
    rows = [("FILE", "SIZE", "MODE", "VERSION")]
    for item in response.files:
        version = versions.get(item.path, "")
        if previous is not None and previous.get(item.path) not in (None, version):
            version = f"{previous[item.path]} -> {version}  (rotated)"
        rows.append((item.path, str(len(item.contents)), f"0{item.mode:o}", version))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join(
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows
    )


def _write(target: Path, response: service_pb2.MountResponse) -> bool:
    return write_atomically(target, [
        FileToWrite(item.path, item.mode, item.contents) for item in response.files
    ])


def run(args: argparse.Namespace) -> int:
    from ack_secrets_provider.core.emulator.testing import running_emulator

    target = Path(args.output)
    try:  # before anything starts: the demo never writes beside files it did not write
        check_target(target)
    except UnsafeTarget:
        print(f"ack-secrets-provider demo: error: --output {target} is not a new or empty "
              "directory, nor one an earlier demo wrote; choose another (the default "
              "demo-mount, or a new name)", file=sys.stderr)
        return 2
    seed = yaml.safe_load((DATA / EMULATOR_DATA_FILE).read_text(encoding="utf-8"))
    key = seed["access_keys"][0]
    spc_name, parameters = _load_spc((DATA / SPC_FILE).read_text(encoding="utf-8"))
    backends = backend_classes()
    with running_emulator(seed) as emulator, tempfile.TemporaryDirectory() as socket_dir:
        parts = ", ".join(sorted(emulator.health().get("services", {}))) or "no parts"
        print(f"emulator: {parts} on {emulator.http_url} (loopback only)")
        settings = ProviderSettings(
            region="cn-hangzhou",
            # every installed backend's service goes to the emulator
            endpoint_overrides=EndpointOverrides.parse(
                sorted({f"{b.service}={emulator.http_url}" for b in backends.values()}),
                endpoint_services(backends.values()),
            ),
            # The demo authenticates like mode 5 (static AccessKey), with the emulator's key.
            environ=MappingProxyType({"ACCESS_KEY_ID": key["id"],
                                      "SECRET_ACCESS_KEY": key["secret"]}),
        )
        with running_provider(settings, socket_dir) as provider:
            print(f"provider: {provider.socket_path}")
            attributes = driver_attributes(parameters, spc_name=spc_name,
                                           pod=PodRef(name="demo-app-0", namespace="demo"))
            first = provider.mount(attributes)
            _write(target, first)
            print(f"\nmounted the sample SecretProviderClass {spc_name} ({SPC_FILE}, as in "
                  f"examples/) into {target}/:\n")
            print(_table(first))
            before = {item.id: item.version for item in first.object_version}
            rotated = provider_objects(settings, parameters)[0]
            new_version = emulator.rotate(rotated.object_type, rotated.object_name, ROTATED_VALUE)
            print(f"\nrotated {rotated.object_type} {rotated.object_name} in the emulator: new "
                  f"current version {new_version}")
            second = provider.mount(attributes)
            changed = _write(target, second)
            print(f"\nmounted again ({'files updated' if changed else 'no change'}):\n")
            print(_table(second, before))
            upstream = emulator.counters()
    print(f"\nupstream calls made: {_calls(upstream)}")
    print(f"files are in {target.resolve()}/ (..data points at the current set)")
    return 0


def provider_objects(settings: ProviderSettings, parameters: dict[str, str]) -> list[ObjectSpec]:
    """The SecretProviderClass's objects as the provider parses them (default objectType and
    all): the demo rotates the first one."""
    host = BackendHost(settings)
    host.load()
    try:
        return list(parse_mount_request(json.dumps(parameters), "null", "",
                                        types=host.object_types()).objects)
    finally:
        host.close()


def _calls(counters: dict[str, object]) -> str:
    by_api = counters.get("by_api", {})
    if isinstance(by_api, dict) and by_api:
        return ", ".join(f"{api} x{count}" for api, count in sorted(by_api.items()))
    return "see the emulator's counters"
