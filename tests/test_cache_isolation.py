"""Cache isolation across identities, as a hypothesis state machine against the emulator.

Two identities (nodePublishSecretRef AccessKeys of two principals: FULL may read everything,
LIMITED only kms app/* and oos app-*) mount random sets of objects while secrets rotate in the
emulator. The model predicts every answer exactly: an identity gets the value IT cached earlier
(the TTL never runs out here) or, if it has none, the current upstream value; never a value only
the other identity fetched; and a mount that names an object its identity may not read fails
with PERMISSION_DENIED, however recently the other identity fetched that object.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from types import MappingProxyType

import pytest
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule, run_state_machine_as_test
from installed import SERVICES

from ack_secrets_provider.backends.kms.emulator import put_secret_version
from ack_secrets_provider.core.cloud.endpoints import EndpointOverrides
from ack_secrets_provider.core.emulator.testing import (
    ACCESS_KEY_ID,
    ACCESS_KEY_SECRET,
    LIMITED_ACCESS_KEY_ID,
    LIMITED_ACCESS_KEY_SECRET,
    EmulatorHandle,
    default_seed,
    running_emulator,
)
from ack_secrets_provider.core.errors import PermissionDenied
from ack_secrets_provider.core.mount.service import MountService
from ack_secrets_provider.core.plugins.credentials import CredentialHost
from ack_secrets_provider.core.plugins.host import BackendHost
from ack_secrets_provider.core.resilience.deadline import Deadline
from ack_secrets_provider.core.server.app import load_plugins
from ack_secrets_provider.core.server.driver_client import driver_attributes
from ack_secrets_provider.core.settings import ProviderSettings

KEYS = {"full": (ACCESS_KEY_ID, ACCESS_KEY_SECRET),
        "limited": (LIMITED_ACCESS_KEY_ID, LIMITED_ACCESS_KEY_SECRET)}
#: (objectType, objectName) → may LIMITED read it?
OBJECTS = {("kms", "app/db-password"): True, ("kms", "other/secret"): False,
           ("oos", "app-token"): True, ("oos", "app-smtp"): True, ("oos", "other-param"): False}
INITIAL = {("kms", "app/db-password"): "new-password", ("kms", "other/secret"): "not-for-limited",
           ("oos", "app-token"): "token-v2", ("oos", "app-smtp"): "smtp-v1",
           ("oos", "other-param"): "hidden"}
NOT_CACHED = None


class Env:
    emulator: EmulatorHandle
    settings: ProviderSettings
    backends: BackendHost
    credentials: CredentialHost
    #: the current upstream value of each object (rotations persist across examples)
    current: dict[tuple[str, str], str]
    rotations = 0


ENV = Env()


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    with running_emulator(default_seed()) as emulator:
        settings = ProviderSettings(
            region="cn-hangzhou",
            endpoint_overrides=EndpointOverrides.parse(
                [f"kms={emulator.http_url}", f"oos={emulator.http_url}"], SERVICES),
            environ=MappingProxyType({}), cache_ttl=3600.0,
        )
        backends, credentials = load_plugins(settings, autoload_third_party=False)
        ENV.emulator, ENV.settings = emulator, settings
        ENV.backends, ENV.credentials = backends, credentials
        ENV.current = dict(INITIAL)
        try:
            yield ENV
        finally:
            backends.close()


class CacheIsolation(RuleBasedStateMachine):
    @initialize()
    def start(self) -> None:
        self.service = MountService(replace(ENV.settings), ENV.backends, ENV.credentials)
        #: (who, object) → the values the cache may hold for that identity (None: nothing)
        self.model: dict[tuple[str, tuple[str, str]], set[str | None]] = {}

    def teardown(self) -> None:
        service = getattr(self, "service", None)
        if service is not None:
            service.close()

    def possible(self, who: str, obj: tuple[str, str]) -> set[str | None]:
        return self.model.get((who, obj), {NOT_CACHED})

    @rule(who=st.sampled_from(sorted(KEYS)),
          objs=st.lists(st.sampled_from(sorted(OBJECTS)), min_size=1, max_size=3, unique=True))
    def mount(self, who: str, objs: list[tuple[str, str]]) -> None:
        entries = "".join(f"- objectName: {name}\n  objectType: {kind}\n" for kind, name in objs)
        key_id, secret = KEYS[who]
        secrets = json.dumps({"access_key": key_id, "access_secret": secret})
        allowed = who == "full" or all(OBJECTS[obj] for obj in objs)
        attributes = driver_attributes({"objects": entries})
        if not allowed:
            with pytest.raises(PermissionDenied):
                self.service.mount(attributes, secrets, '"420"', Deadline.after(20))
            for obj in objs:  # objects it may read may or may not have been fetched
                if OBJECTS[obj] and NOT_CACHED in self.possible(who, obj):
                    self.model[(who, obj)] = self.possible(who, obj) | {ENV.current[obj]}
            return
        outcome = self.service.mount(attributes, secrets, '"420"', Deadline.after(20))
        got = {f.path: f.contents.decode() for f in outcome.files}
        for kind, name in objs:
            obj = (kind, name)
            value = got[name.replace("/", "_")]
            expected = {v for v in self.possible(who, obj) if v is not None}
            if NOT_CACHED in self.possible(who, obj):
                expected.add(ENV.current[obj])
            assert value in expected, (who, obj, value, expected)
            self.model[(who, obj)] = {value}

    @rule(obj=st.sampled_from(sorted(OBJECTS)))
    def rotate(self, obj: tuple[str, str]) -> None:
        ENV.rotations += 1
        kind, name = obj
        value = f"{name}-rotated-{ENV.rotations}"
        if kind == "kms":
            put_secret_version(ENV.emulator, name, value)
        else:
            int(ENV.emulator.rotate("oos", name, value))
        ENV.current[obj] = value


def test_values_are_never_served_across_identities(env: Env) -> None:
    run_state_machine_as_test(
        CacheIsolation,
        settings=hsettings(max_examples=25, stateful_step_count=15, deadline=None),
    )
