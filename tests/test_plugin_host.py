"""Plugin hosts: discovery through entry points, broken plugins reported by name, hook checks."""

from __future__ import annotations

import importlib.metadata
import logging
from types import SimpleNamespace
from typing import Any

import grpc
import pluggy
import pytest

from ack_secrets_provider.core.errors import (
    FailedPrecondition,
    InvalidArgument,
    PermissionDenied,
    PluginError,
)
from ack_secrets_provider.core.mount.spec import parse_mount_request
from ack_secrets_provider.core.observability.metrics import ProviderMetrics
from ack_secrets_provider.core.plugins.credentials import (
    CredentialContext,
    CredentialHost,
    Identity,
    IdentityCache,
    IdentityKey,
)
from ack_secrets_provider.core.plugins.hookspecs import hookimpl
from ack_secrets_provider.core.plugins.host import BackendHost
from ack_secrets_provider.core.resilience.deadline import Deadline
from ack_secrets_provider.core.server.driver_client import PodRef, driver_attributes
from ack_secrets_provider.core.settings import ProviderSettings


def test_test_backend_is_discovered_through_its_entry_point() -> None:
    host = BackendHost(ProviderSettings())
    host.load()
    assert "testmem" in host.names
    assert host.distributions["testmem"] == "ack-test-backend"


def test_third_party_backends_are_not_loaded_when_autoload_is_off() -> None:
    host = BackendHost(ProviderSettings())
    host.load(autoload_third_party=False)
    assert "testmem" not in host.names
    assert sorted(host.names) == ["kms", "oos"]  # the built-ins still load


def test_unknown_object_type_lists_installed_types() -> None:
    host = BackendHost(ProviderSettings())
    host.load()
    with pytest.raises(InvalidArgument, match="installed types are .*testmem"):
        host.get("vault")


def _context(namespace: str = "default", settings: ProviderSettings | None = None
             ) -> CredentialContext:
    request = parse_mount_request(
        driver_attributes({"objects": ""}, pod=PodRef(namespace=namespace)), "null", '"420"'
    )
    return CredentialContext(request, settings or ProviderSettings(), Deadline.after(5),
                             ProviderMetrics(process_collectors=False), IdentityCache())


class _Fixed:
    def __init__(self, mode: str, provider_level: bool = True) -> None:
        self.identity = Identity(IdentityKey(mode=mode), credential=object(),
                                 provider_level=provider_level)

    @hookimpl
    def ack_resolve_identity(self, context: CredentialContext) -> Identity | None:
        return self.identity


class _NotApplicable:
    @hookimpl
    def ack_resolve_identity(self, context: CredentialContext) -> Identity | None:
        return None


class _Misspelled:
    @hookimpl
    def ack_resolve_identiti(self, context: CredentialContext) -> Identity | None:
        return None


def _no_entry_points(monkeypatch: pytest.MonkeyPatch, eps: list[Any] | None = None) -> None:
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group=None, **_: eps or [])


def test_first_result_wins_and_non_applicable_plugins_pass(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _no_entry_points(monkeypatch)
    host = CredentialHost(ProviderSettings())
    host.load(extra=[_Fixed("second"), _NotApplicable()])
    assert host.resolve(_context()).key.mode == "second"


def test_no_plugin_applies_is_a_clear_failed_precondition(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _no_entry_points(monkeypatch)
    host = CredentialHost(ProviderSettings())
    host.load(extra=[_NotApplicable()])
    with pytest.raises(FailedPrecondition, match="no credential is configured"):
        host.resolve(_context())


class _Raising:
    """A third-party plugin that applies and raises `error`; asked before the others."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    @hookimpl(tryfirst=True)
    def ack_resolve_identity(self, context: CredentialContext) -> Identity | None:
        raise self.error


class _Counting(_Fixed):
    def __init__(self, mode: str) -> None:
        super().__init__(mode)
        self.asked = 0

    @hookimpl
    def ack_resolve_identity(self, context: CredentialContext) -> Identity | None:
        self.asked += 1
        return self.identity


def test_a_plugin_that_applies_and_fails_fails_the_mount_with_its_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """plugin-authors.md: a plugin that applies and fails raises a ProviderError and "the
    mount fails with that message"; no later plugin is asked (never another identity)."""
    _no_entry_points(monkeypatch)
    fallback = _Counting("static-ak")
    host = CredentialHost(ProviderSettings())
    host.load(extra=[fallback, _Raising(PermissionDenied("vault refused role app: denied"))])
    with pytest.raises(PermissionDenied) as refused:
        host.resolve(_context())
    assert refused.value.message == "vault refused role app: denied"
    assert fallback.asked == 0


def test_a_plugin_crash_is_an_internal_error_without_its_text_and_logged(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    """plugin-authors.md: "any other exception is reported as PluginError (INTERNAL) without
    its text, and logged"; no later plugin is asked either."""
    _no_entry_points(monkeypatch)
    fallback = _Counting("static-ak")
    host = CredentialHost(ProviderSettings())
    host.load(extra=[fallback, _Raising(KeyError("token=the-plugins-secret-text"))])
    with caplog.at_level(logging.ERROR, logger="ack_secrets_provider"), \
            pytest.raises(PluginError) as crashed:
        host.resolve(_context())
    assert crashed.value.code == grpc.StatusCode.INTERNAL
    assert "KeyError" in crashed.value.message
    assert "the-plugins-secret-text" not in crashed.value.message
    assert fallback.asked == 0
    (logged,) = [r for r in caplog.records if r.exc_info and r.exc_info[0] is KeyError]
    assert logged.levelno == logging.ERROR


def test_misspelled_hook_fails_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    _no_entry_points(monkeypatch)
    host = CredentialHost(ProviderSettings())
    with pytest.raises(PluginError, match="ack_resolve_identiti"):
        host.load(extra=[_Misspelled()])


def test_broken_credential_plugin_is_reported_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_load() -> object:
        raise ImportError("no module named vault_sdk")

    ep = SimpleNamespace(name="vault-auth", dist=SimpleNamespace(name="ack-vault-auth"),
                         load=broken_load)
    _no_entry_points(monkeypatch, [ep])
    host = CredentialHost(ProviderSettings())
    host.load(extra=[_Fixed("static-ak")])
    assert [(f.name, f.distribution) for f in host.failures] == [("vault-auth", "ack-vault-auth")]
    assert "no module named vault_sdk" in host.failures[0].reason
    assert host.resolve(_context()).key.mode == "static-ak"  # the others still work


def test_provider_identity_restricted_to_allowed_namespaces(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _no_entry_points(monkeypatch)
    settings = ProviderSettings(provider_identity_namespaces=frozenset({"payments"}))
    host = CredentialHost(settings)
    host.load(extra=[_Fixed("provider-rrsa")])
    assert host.resolve(_context("payments", settings)).key.mode == "provider-rrsa"
    with pytest.raises(PermissionDenied, match="allow-list"):
        host.resolve(_context("shop", settings))


def test_pod_identity_is_not_restricted_by_the_allow_list(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _no_entry_points(monkeypatch)
    settings = ProviderSettings(provider_identity_namespaces=frozenset({"payments"}))
    host = CredentialHost(settings)
    host.load(extra=[_Fixed("pod-rrsa", provider_level=False)])
    assert host.resolve(_context("shop", settings)).key.mode == "pod-rrsa"


def test_pluggy_project_name_is_stable() -> None:
    host = CredentialHost(ProviderSettings())
    assert isinstance(host.manager, pluggy.PluginManager)
    assert host.manager.project_name == "ack_secrets_provider"


def test_third_party_plugins_come_after_explicit_built_ins_and_before_the_node_role(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = [ep for ep in importlib.metadata.entry_points(
        group="ack_secrets_provider.credentials")
        if ep.name in ("pod-rrsa", "static-ak", "ecs-ram-role")]
    assert len(real) == 3
    third = SimpleNamespace(name="vault-auth", dist=SimpleNamespace(name="ack-vault-auth"),
                            load=lambda: _NotApplicable())
    _no_entry_points(monkeypatch, [*real, third])
    host = CredentialHost(ProviderSettings())
    host.load()
    assert host.plugin_names() == ["pod-rrsa", "static-ak", "vault-auth", "ecs-ram-role"]


def test_autoload_off_keeps_only_built_ins(monkeypatch: pytest.MonkeyPatch) -> None:
    real = [ep for ep in importlib.metadata.entry_points(
        group="ack_secrets_provider.credentials")
        if ep.name in ("pod-rrsa", "static-ak", "ecs-ram-role")]
    assert len(real) == 3
    third = SimpleNamespace(name="vault-auth", dist=SimpleNamespace(name="ack-vault-auth"),
                            load=lambda: _Fixed("vault"))
    _no_entry_points(monkeypatch, [*real, third])
    host = CredentialHost(ProviderSettings())
    host.load(autoload_third_party=False)
    # the third-party plugin is left out, the built-ins are all there, in their order
    assert host.plugin_names() == ["pod-rrsa", "static-ak", "ecs-ram-role"]


def test_the_unknown_field_message_migration_md_quotes_is_the_providers() -> None:
    """docs/migration.md quotes the message a typo gets with the built-in backends: keep the
    page and the parser in step (the quoted block, unwrapped, is the whole message)."""
    import json
    import re
    from pathlib import Path

    from ack_secrets_provider.core.errors import InvalidArgument
    from ack_secrets_provider.core.mount.spec import parse_mount_request

    host = BackendHost(ProviderSettings())
    host.load(autoload_third_party=False)
    attributes = json.dumps({"objects": "- objectName: db-password\n  objectVerison: '2'\n"})
    with pytest.raises(InvalidArgument) as refused:
        parse_mount_request(attributes, "null", '"420"', types=host.object_types())
    page = (Path(__file__).parents[1] / "docs" / "migration.md").read_text()
    (quoted,) = re.findall(r"```text\n(object #1 \('db-password'\).*?)\n```", page, re.S)
    assert " ".join(quoted.split()) == str(refused.value)
