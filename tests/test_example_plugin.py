"""The third-party plugin in examples/plugins/oosparam, installed from its own directory as a
separate distribution: discovered through its entry points, listed by `plugins`, checked by
`lint` with its own validator and its own object field, and mounted end to end by the `mount`
command through a real provider socket against its own emulator part, with a static AccessKey
identity, its own object field (`listFormat`) and its own rate-limit flag
(`--max-oosparam-calls-per-second`) taken by `serve` exactly as the built-ins' are."""

from __future__ import annotations

import filecmp
import json
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import grpc
import pytest

from ack_secrets_provider.core.cli import build_parser, build_settings, main
from ack_secrets_provider.core.emulator.testing import running_emulator
from ack_secrets_provider.core.server.driver_client import (
    driver_attributes,
    files_of,
    running_provider,
)
from ack_secrets_provider.core.settings import ProviderSettings

ROOT = Path(__file__).resolve().parents[1]
DIST = "ack-secrets-provider-oosparam"
AK, SECRET = "LTAI5tExamplePlugin1", "example-plugin-secret"
SEED = {
    "access_keys": [{"id": AK, "secret": SECRET, "principal": "app"}],
    "oosparam": {"parameters": [
        {"name": "shop/feature-flags", "values": ["checkout-v2=off", "checkout-v2=on"]},
        {"name": "shop/regions", "value": "cn-hangzhou,cn-shanghai", "type": "StringList"},
    ]},
}
SPC = """\
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata: {name: shop-config}
spec:
  provider: alibabacloud
  parameters:
    region: cn-hangzhou
    objects: |
      - objectName: "shop/feature-flags"
        objectType: oosparam
        objectAlias: flags
      - objectName: "shop/feature-flags"
        objectType: oosparam
        objectAlias: flags-v1
        objectVersion: "1"
      - objectName: "acs:oos:cn-hangzhou:123456789012:parameter/shop/regions"
        objectType: oosparam
        objectAlias: regions
        listFormat: lines
"""


def test_installed_as_a_built_distribution() -> None:
    try:
        dist = distribution(DIST)
    except PackageNotFoundError:
        pytest.fail(f"{DIST} is not installed: `python3 tasks.py test` installs it with "
                    "`pip install ./examples/plugins/oosparam`")
    groups = {(ep.group, ep.name) for ep in dist.entry_points}
    assert ("ack_secrets_provider.backends", "oosparam") in groups
    assert ("ack_secrets_provider.emulators", "oosparam") in groups
    import ack_oosparam

    # a real wheel build, not the source folder on sys.path
    installed = Path(ack_oosparam.__file__).resolve().parent
    assert ROOT / "examples" not in installed.parents
    # ... of the source as it is now: a stale install would test old code in every test here
    source = ROOT / "examples" / "plugins" / "oosparam" / "ack_oosparam"
    stale = sorted(path.name for path in source.glob("*.py")
                   if not filecmp.cmp(path, installed / path.name, shallow=False))
    assert stale == [], (f"the installed {DIST} is older than examples/ ({stale}): reinstall it "
                         "(`python3 tasks.py test` does, or pip install --force-reinstall)")


def test_plugins_lists_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins", "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {"name": "oosparam", "module": "ack_oosparam.backend:OosParameterBackend",
            "distribution": DIST, "version": "0.1.0"} in report["backends"]
    assert any(p["name"] == "oosparam" and p["distribution"] == DIST
               for p in report["emulator_parts"])


def test_lint_uses_the_plugins_validator(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(SPC)
    assert main(["lint", "-q", str(good)]) == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text(SPC.replace('objectVersion: "1"', 'objectVersion: "101"'))
    assert main(["lint", "-q", str(bad)]) == 1
    assert "object #2 (oosparam 'shop/feature-flags'): field objectVersion '101'" in \
        capsys.readouterr().out


def test_lint_knows_the_plugins_own_field(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(SPC.replace("listFormat: lines", "listFormat: yaml"))
    assert main(["lint", "-q", str(bad)]) == 1
    assert "field listFormat 'yaml' must be one of comma, lines, json" in capsys.readouterr().out
    typo = tmp_path / "typo.yaml"
    typo.write_text(SPC.replace("listFormat: lines", "listFormt: lines"))
    assert main(["lint", "-q", str(typo)]) == 1
    assert "Did you mean 'listFormat'?" in capsys.readouterr().out


def serve_settings(*flags: str) -> ProviderSettings:
    """Settings exactly as `ack-secrets-provider serve <flags>` builds them."""
    args = build_parser("serve").parse_args(["serve", *flags])
    return build_settings(args, {"ACCESS_KEY_ID": AK, "SECRET_ACCESS_KEY": SECRET})


def test_serve_takes_the_plugins_own_rate_limit_flag() -> None:
    settings = serve_settings("--max-oosparam-calls-per-second", "2.5")
    assert settings.rate_limits["oosparam"] == 2.5
    assert serve_settings().rate_limits["oosparam"] == 10.0  # the plugin's declared default
    # --no-plugin-autoload loads the built-ins only: the plugin's flag is not there
    with pytest.raises(SystemExit):
        build_parser("serve", autoload_third_party=False).parse_args(
            ["serve", "--max-oosparam-calls-per-second", "1"])


def test_the_plugins_rate_limit_flag_limits_its_calls() -> None:
    """The flag is the plugin's own: at 0.001 calls per second the second object cannot get a
    slot within the mount's deadline and the mount fails at once naming the flag, while the
    built-in OOS flag set just as low does not touch oosparam calls."""
    objects = ('- {objectName: "shop/feature-flags", objectType: oosparam, objectAlias: a}\n'
               '- {objectName: "shop/regions", objectType: oosparam, objectAlias: b}\n')
    attributes = driver_attributes({"region": "cn-hangzhou", "objects": objects})
    with running_emulator(SEED) as emu:
        limited = serve_settings("--endpoint-override", f"oos={emu.http_url}",
                                 "--max-oosparam-calls-per-second", "0.001")
        with running_provider(limited) as provider, \
                pytest.raises(grpc.RpcError) as refused:
            provider.mount(attributes)
        other = serve_settings("--endpoint-override", f"oos={emu.http_url}",
                               "--max-concurrent-oos-secret-pulls", "0.001")
        with running_provider(other) as provider:
            assert set(files_of(provider.mount(attributes))) == {"a", "b"}
    assert refused.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "--max-oosparam-calls-per-second" in str(refused.value.details())


def test_mount_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spc = tmp_path / "spc.yaml"
    spc.write_text(SPC)
    target = tmp_path / "mnt"
    with running_emulator(SEED) as emu:  # the plugin's part is found through its entry point
        settings = serve_settings("--endpoint-override", f"oos={emu.http_url}")
        with running_provider(settings) as provider:
            code = main(["mount", "--socket", str(provider.socket_path), "--spc", str(spc),
                         "--target", str(target), "--format", "json"])
        calls = emu.counters()
    assert code == 0, capsys.readouterr().err
    report = json.loads(capsys.readouterr().out)
    assert [(f["path"], f["version"]) for f in report["files"]] == [
        ("flags", "2"), ("flags-v1", "1"), ("regions", "1")]
    assert (target / "flags").read_text() == "checkout-v2=on"
    assert (target / "flags-v1").read_text() == "checkout-v2=off"
    assert (target / "regions").read_text() == "cn-hangzhou\ncn-shanghai\n"  # listFormat: lines
    assert calls["by_api"]["oosparam.GetParameter"] == 3  # one call per object
    assert calls["by_principal"] == {"app": 3}  # signed with the static AccessKey


def test_the_plugins_own_field_selects_the_cached_value() -> None:
    """docs/rotation-and-caching.md: a field a third-party backend reads is part of the cache
    key. The same StringList parameter mounted in two listFormats, in one mount and again in a
    second one: each file in its own format, never the other object's cached or coalesced one."""
    objects = ('- {objectName: "shop/regions", objectType: oosparam, objectAlias: lines,'
               ' listFormat: lines}\n'
               '- {objectName: "shop/regions", objectType: oosparam, objectAlias: json,'
               ' listFormat: json}\n')
    attributes = driver_attributes({"region": "cn-hangzhou", "objects": objects})
    with running_emulator(SEED) as emu:
        settings = serve_settings("--endpoint-override", f"oos={emu.http_url}")
        with running_provider(settings) as provider:
            mounts = [files_of(provider.mount(attributes)) for _ in range(2)]
        calls = emu.counters()["by_api"]["oosparam.GetParameter"]
    for files in mounts:
        assert files == {"lines": b"cn-hangzhou\ncn-shanghai\n",
                         "json": b'["cn-hangzhou", "cn-shanghai"]'}
    assert calls == 2  # one per format; the second mount is served from the cache


@pytest.mark.parametrize(("body", "problem"), [
    (b'{"Parameter": {"Value": ["beta=on"], "ParameterVersion": 1}}',
     "field Parameter.Value is list, not a string"),
    (b'{"Parameter": {"Value": "beta=on", "ParameterVersion": "1"}}',
     "field Parameter.ParameterVersion is str, not an integer"),
    (b'{"RequestId": "r-1"}', "without Parameter"),
])
def test_the_plugin_checks_the_answers_fields(body: bytes, problem: str) -> None:
    """plugin-authors.md: a backend "checks the type of every answer field it uses" with
    `core.cloud.answers.field`; the example did not, and wrote a list's Python repr to the file
    (and a missing field was an INTERNAL 'report this'). Now an UnexpectedAnswer naming the
    field and the endpoint, as the built-in OOS backend answers."""
    from hostile_upstream import Answer, hostile_server

    objects = '- {objectName: "shop/feature-flags", objectType: oosparam}\n'
    with hostile_server() as server:
        server.answer = Answer(body=body)
        settings = serve_settings("--endpoint-override", f"oos={server.url}")
        with running_provider(settings) as provider, pytest.raises(grpc.RpcError) as refused:
            provider.mount(driver_attributes({"region": "cn-hangzhou", "objects": objects}))
    assert refused.value.code() == grpc.StatusCode.INTERNAL
    details = str(refused.value.details())
    assert problem in details and "endpoint oos-vpc.cn-hangzhou.aliyuncs.com" in details
