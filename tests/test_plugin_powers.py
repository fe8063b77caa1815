"""docs/plugin-authors.md: "a plugin has exactly the powers a built-in has". Each power a built-in
backend uses is declared through the public contract (`Backend` attributes, `ServiceHints`,
`SdkBackend`), and each is proven here with a backend written in this file the way a third party
would write it, next to the built-ins that use the same declaration. The example plugin's own
field and flag are proven end to end in tests/test_example_plugin.py."""

from __future__ import annotations

import argparse
import io
import logging
import re
import tokenize
from collections.abc import Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar

import pytest
from installed import SERVICES
from scraped import sample

from ack_secrets_provider.core import DISTRIBUTION
from ack_secrets_provider.core.cli import (
    _add_serve_arguments,
    build_parser,
    build_settings,
    unreadable_path,
)
from ack_secrets_provider.core.cloud.endpoints import Endpoint, EndpointOverrides
from ack_secrets_provider.core.cloud.sdk_errors import ServiceHints, map_sdk_error
from ack_secrets_provider.core.emulator.testing import EmulatorHandle
from ack_secrets_provider.core.errors import (
    FailedPrecondition,
    NotFound,
    PermissionDenied,
    PluginError,
    ProviderError,
    RejectedByUpstream,
    Unauthenticated,
    Unavailable,
)
from ack_secrets_provider.core.mount.service import MountService
from ack_secrets_provider.core.mount.spec import ObjectSpec
from ack_secrets_provider.core.observability.metrics import ProviderMetrics
from ack_secrets_provider.core.plugins.backend import (
    Backend,
    FetchContext,
    Option,
    RateLimit,
    SecretValue,
)
from ack_secrets_provider.core.plugins.credentials import CredentialHost, Identity, IdentityKey
from ack_secrets_provider.core.plugins.host import BackendHost, backend_classes
from ack_secrets_provider.core.plugins.toolkit import SdkBackend
from ack_secrets_provider.core.resilience.deadline import Deadline
from ack_secrets_provider.core.resilience.fetcher import Fetcher, FetchUnit
from ack_secrets_provider.core.resilience.retry import PROBE_INTERVAL
from ack_secrets_provider.core.server.app import build_app
from ack_secrets_provider.core.server.driver_client import driver_attributes
from ack_secrets_provider.core.settings import ProviderSettings, RetryPolicy


class VaultBackend(Backend):
    """A third party's backend declaring every power: a field, flags, the default type."""

    object_type: ClassVar[str] = "vault"
    service: ClassVar[str] = "vault"
    object_fields = MappingProxyType({"vaultMount": "the secrets engine mount"})
    is_default_type: ClassVar[bool] = True
    rate_limit = RateLimit("--max-vault-calls-per-second", what="vault calls per second",
                           default=3.0, help="vault calls per second")
    options = (Option("--vault-ca-file", help="CA bundle of the vault server", kind="file"),)

    def endpoint(self, spec: ObjectSpec, region: str | None) -> Endpoint:
        return self.settings.endpoint_overrides.resolve(self.service, "vault.example.com")

    def fetch(self, spec: ObjectSpec, ctx: FetchContext) -> SecretValue:
        return SecretValue(b"", "v1")


def host_with(backends: dict[str, tuple[Backend, str]], **settings: Any) -> BackendHost:
    """A backend host holding `backends` (objectType → (backend, distribution))."""
    host = BackendHost(ProviderSettings(**settings))
    for name, (backend, distribution) in backends.items():
        host.backends[name] = backend
        host.distributions[name] = distribution
    return host


def test_object_fields_come_from_each_backend_built_in_or_not() -> None:
    host = BackendHost(ProviderSettings())
    host.load()  # the built-ins and the installed example plugin, through their entry points
    fields = host.object_types().fields
    assert fields["kms"] == {"kmsEndpoint"} and fields["oos"] == {"oosEndpoint"}
    assert fields["oosparam"] == {"oosEndpoint", "listFormat"}  # its own field, and a shared one
    vault = host_with({"vault": (VaultBackend(ProviderSettings()), "vault-plugin")})
    assert vault.object_types().fields == {"vault": {"vaultMount"}}


def test_the_default_object_type_is_claimed_not_named_in_core() -> None:
    settings = ProviderSettings()
    host = BackendHost(settings)
    host.load(autoload_third_party=False)
    assert host.default_type() == "kms"  # claimed by the KMS backend, for compatibility
    vault = VaultBackend(settings)
    # a plugin's claim counts as much as a built-in's when none is installed ...
    assert host_with({"vault": (vault, "vault-plugin")}).default_type() == "vault"
    # ... the provider's own wins when both claim it, and the setting wins over both
    both = {"vault": (vault, "vault-plugin"), "kms": (host.backends["kms"], DISTRIBUTION)}
    assert host_with(both).default_type() == "kms"
    assert host_with(both, default_object_type="vault").default_type() == "vault"
    # a setting naming no installed backend stops the start-up, naming the flag
    with pytest.raises(PluginError, match="--default-object-type 'vualt' is not an installed"):
        host_with(both, default_object_type="vualt").default_type()


def serve_args(backends: dict[str, type[Backend]], *argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    _add_serve_arguments(parser, backends)
    return parser.parse_args(list(argv))


def test_a_plugin_brings_its_own_serve_flags() -> None:
    args = serve_args({"vault": VaultBackend}, "--max-vault-calls-per-second", "7",
                      "--vault-ca-file", "/etc/vault/ca.pem")
    settings = build_settings(args, {})
    assert settings.rate_limits == {"vault": 7.0}
    assert settings.backend_options == {"vault_ca_file": "/etc/vault/ca.pem"}
    defaults = build_settings(serve_args({"vault": VaultBackend}), {})
    assert defaults.rate_limits == {"vault": 3.0}
    assert defaults.backend_options == {"vault_ca_file": None}  # not given


def test_a_plugins_path_option_is_checked_when_serve_starts(tmp_path: Path) -> None:
    """`Option(kind="file")`: serve refuses a path it cannot read, naming the plugin's flag,
    as it does for --kms-ca-file (tests/test_cli_serve.py runs serve with that one)."""
    missing = serve_args({"vault": VaultBackend}, "--vault-ca-file", str(tmp_path / "no.pem"))
    assert unreadable_path(missing) == (
        f"argument --vault-ca-file: '{tmp_path / 'no.pem'}' is not a readable file")
    assert unreadable_path(serve_args({"vault": VaultBackend}, "--vault-ca-file",
                                      str(tmp_path))) is not None  # a directory
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    assert unreadable_path(serve_args({"vault": VaultBackend}, "--vault-ca-file",
                                      str(tmp_path / "ca.pem"))) is None
    assert unreadable_path(serve_args({"vault": VaultBackend})) is None  # not given

    class Taken(VaultBackend):  # its path flag is already serve's: ignored, so not checked
        options = (Option("--sts-ca-file", help="taken", kind="directory"),)

    assert unreadable_path(serve_args({"taken": Taken}, "--sts-ca-file", str(tmp_path / "ca.pem"))
                           ) is None


def test_the_official_flags_are_the_built_in_backends_own() -> None:
    builtins = backend_classes(autoload_third_party=False)
    assert {name: cls.rate_limit.flag for name, cls in builtins.items() if cls.rate_limit} == {
        "kms": "--max-concurrent-kms-secret-pulls", "oos": "--max-concurrent-oos-secret-pulls"}
    assert [option.flag for option in builtins["kms"].options] == ["--kms-ca-file",
                                                                  "--kms-ca-dir"]
    args = build_parser("serve").parse_args(
        ["serve", "--max-concurrent-kms-secret-pulls", "4", "--kms-ca-dir", "/ca"])
    settings = build_settings(args, {})
    assert (settings.rate_limits["kms"], settings.rate_limits["oos"]) == (4.0, 10.0)
    assert settings.backend_options["kms_ca_dir"] == "/ca"


def test_a_flag_that_is_already_taken_is_ignored_with_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Greedy(VaultBackend):
        rate_limit = RateLimit("--region", what="greedy calls per second")

    with caplog.at_level(logging.ERROR):
        args = serve_args({"greedy": Greedy}, "--region", "cn-hangzhou")
    assert args.region == "cn-hangzhou"  # the core's flag keeps its meaning
    assert "backend 'greedy' declares the flag --region, which is already taken" in caplog.text


def test_endpoint_override_services_are_the_installed_backends() -> None:
    args = serve_args({"vault": VaultBackend}, "--endpoint-override", "vault=http://127.0.0.1:1")
    assert build_settings(args, {}).endpoint_overrides.by_service == {
        "vault": "http://127.0.0.1:1"}
    with pytest.raises(ValueError, match="'vault' is neither a service"):
        build_settings(serve_args({}, "--endpoint-override", "vault=http://127.0.0.1:1"), {})


def test_a_plugins_error_codes_map_as_a_built_ins_do() -> None:
    class ServiceError(Exception):
        code = "Forbidden.Vault"
        status_code = 400
        request_id = "req-1"

    endpoint = Endpoint("vault", "vault.example.com", "vault.example.com")
    hints = ServiceHints(service="Vault", object_kind="vault secret", read_action="vault:Read",
                         permission_codes=("Forbidden.Vault",))
    denied = map_sdk_error(ServiceError(), what="object #1", endpoint=endpoint, hints=hints)
    assert isinstance(denied, PermissionDenied) and "vault:Read" in denied.message
    unknown = map_sdk_error(ServiceError(), what="object #1", endpoint=endpoint,
                            hints=ServiceHints("Vault", "vault secret", "vault:Read"))
    assert not isinstance(unknown, PermissionDenied)  # the code is the plugin's knowledge


class GatewayBackend(SdkBackend):
    """A third party's SDK backend on a private gateway whose CA it declares itself."""

    object_type: ClassVar[str] = "gateway"
    service: ClassVar[str] = "gateway"
    hints = ServiceHints(service="Gateway", object_kind="gateway secret",
                         read_action="kms:GetSecretValue", tls_advice="set --gateway-ca-file")
    options = (Option("--gateway-ca-file", help="CA of the gateway"),)

    def new_client(self, config: Any) -> Any:
        from alibabacloud_kms20160120.client import Client

        return Client(config)

    def ca_files(self, spec: ObjectSpec, ctx: FetchContext) -> tuple[str, ...]:
        ca_file = self.settings.backend_options.get("gateway_ca_file")
        return (ca_file,) if ca_file else ()

    def endpoint(self, spec: ObjectSpec, region: str | None) -> Endpoint:
        return self.settings.endpoint_overrides.resolve(self.service, "gw.example.com")

    def fetch(self, spec: ObjectSpec, ctx: FetchContext) -> SecretValue:
        from alibabacloud_kms20160120 import models

        key, client = self.client(spec, ctx)
        request = models.GetSecretValueRequest(secret_name=spec.object_name)
        runtime = self.runtime(ctx)
        response = self.call(ctx, key, spec.describe(),
                             lambda: client.get_secret_value_with_options(request, runtime))
        return SecretValue(str(response.body.secret_data).encode(), response.body.version_id)


def test_a_plugin_declares_the_tls_trust_of_its_endpoints(emulator_tls: EmulatorHandle) -> None:
    from alibabacloud_credentials.client import Client as CredentialClient
    from alibabacloud_credentials.provider.static_ak import StaticAKCredentialsProvider

    from ack_secrets_provider.core.emulator.testing import ACCESS_KEY_ID, ACCESS_KEY_SECRET

    # its own "gateway" host, sent to the emulator's HTTPS listener (root → intermediate → leaf)
    overrides = EndpointOverrides.parse([f"gw.example.com={emulator_tls.https_url}"], SERVICES)
    provider = StaticAKCredentialsProvider(access_key_id=ACCESS_KEY_ID,
                                           access_key_secret=ACCESS_KEY_SECRET)
    identity = Identity(IdentityKey(mode="static-ak", access_key_id=ACCESS_KEY_ID),
                        CredentialClient(provider=provider))
    spec = ObjectSpec(index=0, object_name="app/db-password", object_type="gateway",
                      file_name="db")

    def fetch(**options: str) -> SecretValue:
        settings = ProviderSettings(endpoint_overrides=overrides, backend_options=options)
        backend = GatewayBackend(settings)
        try:
            ctx = FetchContext(identity, Deadline.after(10), backend.endpoint(spec, None),
                               settings)
            return backend.fetch(spec, ctx)
        finally:
            backend.close()

    # without a declared CA, the SDK's public roots refuse the private chain ...
    with pytest.raises(FailedPrecondition, match="TLS verification.*set --gateway-ca-file"):
        fetch()
    # ... with only the intermediate, as users hold it, the plugin's declaration makes it trusted
    assert fetch(gateway_ca_file=str(emulator_tls.intermediate_ca)).data == b"new-password"


# -- the core knows no built-in backend by name ---------------------------------------------

ROOT = Path(__file__).resolve().parents[1]
#: what would betray knowledge of a built-in backend: its names (as a word, also inside
#: identifiers such as kms_rate_limit or --max-concurrent-kms-secret-pulls), its error codes and
#: hosts, and the package that ships its CA files
BUILTIN_NAMES = re.compile(
    r"(?i)(?<![a-z])(kms|oos)(?![a-z])|Forbidden\.KMS|cryptoservice|backends\.(kms|oos)"
)


def code_tokens(source: str) -> list[tuple[int, str]]:
    """(line, text) of every token of Python `source` except comments and docstrings."""
    tokens = [t for t in tokenize.generate_tokens(io.StringIO(source).readline)
              if t.type not in (tokenize.NL, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT)]
    kept = []
    for i, token in enumerate(tokens):
        before = tokens[i - 1] if i else None
        after = tokens[i + 1] if i + 1 < len(tokens) else None
        docstring = (token.type == tokenize.STRING
                     and (before is None or before.type == tokenize.NEWLINE)
                     and after is not None
                     and after.type in (tokenize.NEWLINE, tokenize.ENDMARKER))
        if not docstring and token.type not in (tokenize.NEWLINE, tokenize.ENDMARKER):
            kept.append((token.start[0], token.string))
    return kept


def builtin_names_in(source: str) -> list[tuple[int, str]]:
    return [(line, text) for line, text in code_tokens(source) if BUILTIN_NAMES.search(text)]


def test_the_core_names_no_built_in_backend() -> None:
    found = [f"{path.relative_to(ROOT)}:{line}: {text}"
             for path in sorted((ROOT / "core").rglob("*.py")) if "_pb2" not in path.name
             for line, text in builtin_names_in(path.read_text(encoding="utf-8"))]
    assert not found, ("core/ knows a built-in backend by name; declare it in the backend "
                       "through the plugin contract instead:\n" + "\n".join(found))


def test_the_name_search_sees_code_and_skips_prose() -> None:
    source = (
        '"""Docs may say KMS and oos."""\n'
        "# so may comments: kms\n"
        "def f(kms_rate_limit=0):\n"
        '    """Neither does this docstring about oosEndpoint."""\n'
        '    return {"flag": "--max-concurrent-kms-secret-pulls", "code": "Forbidden.KMS"}\n'
        'PACKAGE = "ack_secrets_provider.backends.oos"\n'
        'HINT = "choose the host"\n'
    )
    assert [line for line, _ in builtin_names_in(source)] == [3, 5, 5, 6]


def test_sdk_backend_drops_a_client_whose_credential_was_rejected(
    emulator: EmulatorHandle,
) -> None:
    from alibabacloud_credentials.client import Client as CredentialClient
    from alibabacloud_credentials.provider.static_ak import StaticAKCredentialsProvider

    from ack_secrets_provider.core.emulator.testing import ACCESS_KEY_ID, ACCESS_KEY_SECRET

    settings = ProviderSettings(endpoint_overrides=EndpointOverrides.parse(
        [f"gw.example.com={emulator.http_url}"], SERVICES))
    backend = GatewayBackend(settings)
    spec = ObjectSpec(index=0, object_name="app/db-password", object_type="gateway",
                      file_name="db")

    def fetch(secret: str) -> SecretValue:
        provider = StaticAKCredentialsProvider(access_key_id=ACCESS_KEY_ID,
                                               access_key_secret=secret)
        identity = Identity(IdentityKey(mode="static-ak", access_key_id=ACCESS_KEY_ID),
                            CredentialClient(provider=provider))
        ctx = FetchContext(identity, Deadline.after(10), backend.endpoint(spec, None), settings)
        return backend.fetch(spec, ctx)

    try:
        with pytest.raises(Unauthenticated):
            fetch("a-wrong-secret")
        assert len(backend._clients) == 0  # not kept to fail again
        assert fetch(ACCESS_KEY_SECRET).data == b"new-password"
        assert len(backend._clients) == 1
    finally:
        backend.close()


def test_a_plugins_not_found_codes_map_as_a_built_ins_do() -> None:
    class ServiceError(Exception):
        code = "Gone.Vault"
        status_code = 400
        request_id = "req-2"

    endpoint = Endpoint("vault", "vault.example.com", "vault.example.com")
    hints = ServiceHints(service="Vault", object_kind="vault secret", read_action="vault:Read",
                         not_found_codes=("Gone.Vault",))
    error = map_sdk_error(ServiceError(), what="object #1", endpoint=endpoint, hints=hints)
    assert type(error).__name__ == "NotFound" and "vault secret not found" in error.message


def test_a_field_of_another_backend_is_logged_and_linted_as_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str],
) -> None:
    from ack_secrets_provider.core.cli import main
    from ack_secrets_provider.core.server.driver_client import (
        driver_attributes,
        files_of,
        running_provider,
    )

    objects = ('- {objectName: x, objectType: testmem, '
               'kmsEndpoint: "kms.cn-hangzhou.aliyuncs.com"}\n')
    with running_provider(ProviderSettings()) as provider, caplog.at_level(logging.WARNING):
        assert files_of(provider.mount(driver_attributes({"objects": objects}))) == {
            "x": b"value-of-x"}
    warning = ("field kmsEndpoint belongs to objectType kms and is ignored for testmem "
               "objects; remove it (or set objectType: kms)")
    assert warning in caplog.text
    spc = tmp_path / "spc.yaml"
    spc.write_text("apiVersion: secrets-store.csi.x-k8s.io/v1\nkind: SecretProviderClass\n"
                   "metadata: {name: a}\nspec:\n  provider: alibabacloud\n  parameters:\n"
                   "    objects: |\n      " + objects)
    main(["lint", str(spc)])
    assert warning in capsys.readouterr().out


# -- plugin authors never need a private module ---------------------------------------------

_PRIVATE_IMPORT = re.compile(
    r"^\s*(?:from|import)\s+(ack_secrets_provider(?:\.\w+)*\._\w+)", re.MULTILINE)


def private_imports(text: str) -> list[str]:
    return _PRIVATE_IMPORT.findall(text)


def test_no_plugin_example_or_doc_imports_a_private_module() -> None:
    examples = ROOT / "examples"
    sources = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md",
               *sorted(examples.rglob("*.py")), *sorted(examples.rglob("*.md"))]
    found = [f"{path.relative_to(ROOT)}: {name}" for path in sources if "build" not in path.parts
             for name in private_imports(path.read_text(encoding="utf-8"))]
    assert not found, found
    # the check sees one
    assert private_imports("from ack_secrets_provider.auth._providers import secret_digest\n") == [
        "ack_secrets_provider.auth._providers"]


def test_serve_refuses_a_default_object_type_that_is_not_installed(tmp_path: Path) -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "ack_secrets_provider.core.cli", f"--provider-volume={tmp_path}",
         "--healthz-port=0", "--metrics-port=0", "--region=cn-hangzhou",
         "--default-object-type=vualt"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 1, result.stderr
    assert "cannot start: --default-object-type 'vualt' is not an installed backend" in \
        result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "alibabacloud.sock").exists()


#: docs/plugin-authors.md "Stable in 0.x": each public module and the names it promises there
STABLE_SURFACE = {
    "core.plugins.backend": ("Backend", "RateLimit", "Option", "SecretValue", "FetchContext"),
    "core.plugins.toolkit": ("SdkBackend", "endpoint_example", "IdentityCache", "secret_digest",
                             "RefreshingProvider", "Issued", "Fetch", "refreshing_identity"),
    "core.plugins.host": ("endpoint_services",),
    "core.mount.spec": ("ObjectSpec", "MountRequest", "ObjectTypes", "PARAMETERS",
                        "OBJECT_FIELDS"),
    "core.plugins.hookspecs": ("hookimpl",),
    "core.plugins.credentials": ("Identity", "IdentityKey", "CredentialContext",
                                 "CredentialHost"),
    "core.cloud.sdk_errors": ("map_sdk_error", "ServiceHints"),
    "core.cloud.clients": ("ClientCache", "ClientKey", "openapi_config"),
    "core.cloud.answers": ("body_of", "field", "optional_field"),
    "core.errors": ("ProviderError", "InvalidArgument", "NotFound", "PermissionDenied",
                    "Unauthenticated", "FailedPrecondition", "Unavailable", "Throttled",
                    "DeadlineExceeded", "ResourceExhausted", "InternalError", "UnexpectedAnswer",
                    "UpstreamDataError", "RejectedByUpstream"),
    "core.settings": ("ProviderSettings",),
    "core.cloud.endpoints": ("Endpoint", "EndpointOverrides", "check_endpoint_host"),
    "core.mount.arn": (),
    "core.resilience.deadline": ("Deadline",),
    "core.observability.metrics": ("ProviderMetrics",),
    "core.server.driver_client": ("running_provider", "driver_attributes", "files_of"),
    "core.emulator.testing": (),
    "core.emulator.api": ("EmulatorPart", "Call", "Reply", "ApiError"),
}


@pytest.mark.parametrize("module", sorted(STABLE_SURFACE))
def test_the_stable_surface_plugin_authors_md_lists_is_importable(module: str) -> None:
    import importlib

    imported = importlib.import_module(f"ack_secrets_provider.{module}")
    missing = [name for name in STABLE_SURFACE[module] if not hasattr(imported, name)]
    assert not missing, f"{module} lost {missing}: docs/plugin-authors.md calls them stable"
    page = (Path(__file__).parents[1] / "docs" / "plugin-authors.md").read_text()
    # a module dropped from the page must leave this list too (the emulator part interface is
    # listed by its names only)
    assert f"`{module}" in page or all(f"`{name}`" in page for name in STABLE_SURFACE[module])


def test_every_module_the_guide_has_plugins_import_from_is_stable() -> None:
    """What docs/plugin-authors.md tells a plugin to import (in its text and its code) is in its
    "Stable in 0.x" list: the guide told every backend to check answers with
    `core.cloud.answers.field` and its test example built `core.settings.ProviderSettings`,
    while the list left both out, so under "everything else" (not stable)."""
    page = (Path(__file__).parents[1] / "docs" / "plugin-authors.md").read_text()
    guide = page.split("## Versioning promises", 1)[0]
    # a stable name the guide reaches through its package's re-export
    reexports = {"core.emulator.EmulatorPart"}  # core.emulator.api.EmulatorPart
    paths = set(re.findall(r"ack_secrets_provider\.(core(?:\.\w+)+)", guide))
    assert len(paths) >= 5, paths  # the guide's imports were found (a renamed page finds none)
    unstable = set()
    for path in paths:
        parts = path.split(".")
        prefixes = {".".join(parts[:end]) for end in range(2, len(parts) + 1)}
        if not prefixes & set(STABLE_SURFACE) and path not in reexports:
            unstable.add(path)
    assert not unstable, f"the guide has plugins use modules it calls unstable: {unstable}"


def test_the_metrics_recording_methods_plugin_authors_use_exist() -> None:
    from ack_secrets_provider.core.observability.metrics import ProviderMetrics
    from ack_secrets_provider.core.plugins.credentials import CredentialHost

    for method in ("record_sts_call", "record_credential_refresh", "record_cache_hit",
                   "record_cache_miss", "record_coalesced_wait"):
        assert callable(getattr(ProviderMetrics, method, None)), method
    assert callable(CredentialHost.load)


class AnsweringBackend(Backend):
    """A third party's backend on one endpoint: `down` is an outage, `answer` gets the service's
    answer `self.answer` (an error class a plugin raises), anything else a value."""

    object_type: ClassVar[str] = "answering"
    service: ClassVar[str] = "answering"

    def __init__(self, settings: ProviderSettings, answer: ProviderError) -> None:
        super().__init__(settings)
        self.answer = answer

    def endpoint(self, spec: ObjectSpec, region: str | None) -> Endpoint:
        return Endpoint(service=self.service, host="answering.local", address="answering.local")

    def fetch(self, spec: ObjectSpec, ctx: FetchContext) -> SecretValue:
        if spec.object_name == "down":
            raise Unavailable(f"{spec.describe()}: 503 from the test service")
        if spec.object_name == "answer":
            raise self.answer
        return SecretValue(b"value", "v1")


@pytest.mark.parametrize(("answer", "reopens"), [
    (NotFound("no such secret"), True),
    (PermissionDenied("no permission"), True),
    (Unauthenticated("unknown AccessKey"), True),
    (RejectedByUpstream("the service refused the request"), True),
    (FailedPrecondition("not an answer of the service"), False),  # control: proves nothing
], ids=["NotFound", "PermissionDenied", "Unauthenticated", "RejectedByUpstream", "control"])
def test_a_plugins_not_found_denied_or_rejected_answer_proves_its_endpoint_up(
    answer: ProviderError, reopens: bool,
) -> None:
    """plugin-authors.md: NotFound, PermissionDenied, Unauthenticated and RejectedByUpstream
    "tell the core the endpoint answered, so they do not count against its retry budget or
    outage gate". An outage empties the one-token budget and shuts the gate (a frozen clock:
    only the probe a second later goes out); the probe gets `answer`, after which a mount on
    the endpoint is served at once, not refused until the next probe."""
    settings = ProviderSettings(retry=RetryPolicy(max_attempts=2, base_delay=0.0001,
                                                  max_delay=0.0001, budget_tokens=1.0))
    now = [0.0]
    fetcher = Fetcher(settings, metrics=ProviderMetrics(process_collectors=False),
                      clock=lambda: now[0])
    backend = AnsweringBackend(settings, answer)
    identity = Identity(IdentityKey(mode="test"), credential=None, provider_level=False)

    def fetch(name: str) -> None:
        spec = ObjectSpec(index=0, object_name=name, object_type="answering", file_name=name)
        ctx = FetchContext(identity, Deadline.after(10), backend.endpoint(spec, None), settings)
        fetcher.fetch(FetchUnit(backend, (spec,), ctx))

    with pytest.raises(Unavailable, match="503 from the test service"):
        fetch("down")  # two attempts: the retry spent the budget, the endpoint looks down
    with pytest.raises(Unavailable, match="not called: endpoint"):
        fetch("ok")
    now[0] += PROBE_INTERVAL
    with pytest.raises(type(answer)):
        fetch("answer")  # the probe: the service answered
    if reopens:
        fetch("ok")
    else:
        with pytest.raises(Unavailable, match="not called: endpoint"):
            fetch("ok")


def test_every_backend_is_closed_at_shutdown_even_after_one_fails_to(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    """plugin-authors.md: `close()` is called "at shutdown": the third-party test backend's and
    the built-ins', in a provider wired as `serve` wires it; one backend failing to close is
    logged and does not stop the others from closing."""
    app = build_app(ProviderSettings(), str(tmp_path))
    closed: list[str] = []

    def closer(name: str, fails: bool) -> Any:
        def close() -> None:
            closed.append(name)
            if fails:
                raise RuntimeError("the pool would not close")
        return close

    # every one fails, so whichever the loop meets first, the others must still be closed
    for name, backend in app.backends.backends.items():
        monkeypatch.setattr(backend, "close", closer(name, fails=True))
    app.start()
    assert not closed
    with caplog.at_level(logging.ERROR, logger="ack_secrets_provider"):
        app.stop(grace=0)
    assert sorted(closed) == sorted(app.backends.names) and "testmem" in closed
    for name in app.backends.names:
        assert f"backend {name!r} failed to close" in caplog.text


class RegionalGatewayBackend(GatewayBackend):
    """The gateway with regional hosts, whose region it declares how to read."""

    region_in_host = re.compile(r"^gw\.([a-z0-9-]+)\.example\.com$")


def test_sdk_backend_region_comes_from_the_arn_the_host_the_mount_then_the_flag() -> None:
    """plugin-authors.md: `self.region(ctx, arn.region if arn else None)` takes the region
    from the "ARN, endpoint host, mount, --region", in that order."""
    backend = RegionalGatewayBackend(ProviderSettings(region="cn-hangzhou"))
    identity = Identity(IdentityKey(mode="test"), credential=None)

    def region(host: str, mount: str | None, arn: str | None = None) -> str | None:
        ctx = FetchContext(identity, Deadline.after(5), Endpoint("gateway", host, host),
                           backend.settings, region=mount)
        return backend.region(ctx, arn)

    assert region("gw.cn-beijing.example.com", "cn-shanghai", "ap-southeast-1") == (
        "ap-southeast-1")
    assert region("gw.cn-beijing.example.com", "cn-shanghai") == "cn-beijing"
    assert region("gateway.internal", "cn-shanghai") == "cn-shanghai"
    assert region("gateway.internal", None) == "cn-hangzhou"


class ShelfBackend(Backend):
    """A third party's batching backend whose objects pick their endpoint with a field."""

    object_type: ClassVar[str] = "shelf"
    service: ClassVar[str] = "shelf"
    object_fields = MappingProxyType({"shelfHost": "the shelf server"})
    max_batch: ClassVar[int] = 2
    needs_credentials: ClassVar[bool] = False

    def __init__(self, settings: ProviderSettings) -> None:
        super().__init__(settings)
        self.calls: list[tuple[str, tuple[str, ...]]] = []

    def endpoint(self, spec: ObjectSpec, region: str | None) -> Endpoint:
        host = spec.fields.get("shelfHost", "a.shelf.local")
        return self.settings.endpoint_overrides.resolve(self.service, host)

    def fetch(self, spec: ObjectSpec, ctx: FetchContext) -> SecretValue:
        return self.fetch_batch([spec], ctx)[0]

    def fetch_batch(self, specs: Sequence[ObjectSpec], ctx: FetchContext) -> list[SecretValue]:
        self.calls.append((ctx.endpoint.host, tuple(spec.object_name for spec in specs)))
        return [SecretValue(f"{ctx.endpoint.host}/{spec.object_name}".encode(), "v1")
                for spec in specs]


def test_a_plugins_batches_hold_at_most_max_batch_objects_of_one_endpoint() -> None:
    """plugin-authors.md: `fetch_batch(specs, ctx)` is called "when max_batch > 1, for objects of
    one endpoint and identity", at most `max_batch` of them, and each value lands in the file of
    its object."""
    settings = ProviderSettings(cache_ttl=0)
    backend = ShelfBackend(settings)
    service = MountService(settings, host_with({"shelf": (backend, "shelf-plugin")}),
                           CredentialHost(settings))
    objects = ("- {objectName: x1, objectType: shelf}\n"
               "- {objectName: y1, objectType: shelf, shelfHost: b.shelf.local}\n"
               "- {objectName: x2, objectType: shelf}\n"
               "- {objectName: x3, objectType: shelf}\n")
    try:
        outcome = service.mount(driver_attributes({"objects": objects}), "null", '"420"',
                                Deadline.after(10))
    finally:
        service.close()
    assert sorted(backend.calls) == [("a.shelf.local", ("x1", "x2")), ("a.shelf.local", ("x3",)),
                                     ("b.shelf.local", ("y1",))]
    assert {f.path: f.contents for f in outcome.files} == {
        "x1": b"a.shelf.local/x1", "x2": b"a.shelf.local/x2", "x3": b"a.shelf.local/x3",
        "y1": b"b.shelf.local/y1"}


@pytest.mark.parametrize("seconds", [0.25, 3.0, 300.0])
def test_sdk_backend_runtime_is_one_attempt_within_the_deadline(seconds: float) -> None:
    """plugin-authors.md: `self.runtime(ctx)` is "one attempt, timeouts inside the deadline":
    the SDK's own retries off (`autoretry=False`), its connect and read timeouts no longer
    than what is left of the mount's deadline."""
    backend = GatewayBackend(ProviderSettings())
    spec = ObjectSpec(index=0, object_name="s", object_type="gateway", file_name="s")
    ctx = FetchContext(Identity(IdentityKey(mode="test"), credential=None),
                       Deadline.after(seconds), backend.endpoint(spec, None), backend.settings)
    runtime = backend.runtime(ctx)
    assert runtime.autoretry is False
    assert 0 < runtime.connect_timeout <= seconds * 1000
    assert 0 < runtime.read_timeout <= seconds * 1000


def test_a_credential_plugins_refreshing_identity_uses_the_hosts_clock_and_metrics() -> None:
    """plugin-authors.md: `refreshing_identity(key, name, fetch, context, provider_level=...)`
    calls the plugin's `fetch` once per credential lifetime "on the host's clock and metrics"
    (`context.identities.clock`, `context.metrics`), as pod-level RRSA does."""
    from ack_secrets_provider.core.mount.spec import parse_mount_request
    from ack_secrets_provider.core.plugins.credentials import CredentialContext
    from ack_secrets_provider.core.plugins.toolkit import IdentityCache, Issued, refreshing_identity

    now = [1_000_000.0]
    issued: list[float] = []

    def fetch(timeout: float) -> Issued:
        issued.append(now[0])
        return Issued(f"LTAIvault{len(issued)}", "vault-secret", "vault-token",
                      expiration=now[0] + 3600)

    metrics = ProviderMetrics(process_collectors=False)
    request = parse_mount_request(driver_attributes({"objects": ""}), "null", '"420"')
    context = CredentialContext(request, ProviderSettings(), Deadline.after(5), metrics,
                                IdentityCache(clock=lambda: now[0]))
    identity = refreshing_identity(IdentityKey(mode="vault-sts"), "vault-sts", fetch, context,
                                   provider_level=True)
    assert identity.provider_level and identity.key.mode == "vault-sts"
    assert identity.credential.get_credential().access_key_id == "LTAIvault1"
    now[0] += 600  # within the lifetime: the same credential, no new fetch
    assert identity.credential.get_credential().access_key_id == "LTAIvault1"
    now[0] += 3600  # past it, on the host's clock (the real one has not moved)
    assert identity.credential.get_credential().access_key_id == "LTAIvault2"
    assert len(issued) == 2
    assert sample(metrics, "ack_secrets_provider_credential_refreshes_total",
                  {"mode": "vault-sts", "result": "ok"}) == 2
