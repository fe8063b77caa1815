"""A pod author's jmesPath expressions: a few hundred characters that would build values of 2^40
nodes (shared structure walked in full) or double a string 30 times are refused at once, in
bounded memory, while ordinary expressions still work."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from hostile_provider import MiB, PeakRss, ProviderProcess, cpu_after, provider_process

from ack_secrets_provider.core.emulator.testing import default_seed, running_emulator
from ack_secrets_provider.core.mount.jmespath_eval import Budget, search
from ack_secrets_provider.core.mount.limits import RequestLimits
from ack_secrets_provider.core.server.driver_client import (
    driver_attributes,
    files_of,
    running_provider,
)
from ack_secrets_provider.core.settings import ProviderSettings

DOUBLE = " | [@, @]" * 40  # a list holding the previous value twice, 40 times over

BOMBS = {
    "serialised": "user" + DOUBLE + " | to_string(@)",
    "compared": f"(user{DOUBLE}) == (user{DOUBLE})",
    "sorted": "user" + " | [@, @]" * 30 + " | sort(@)",
    "flattened": "user" + DOUBLE + " | []" * 40,
    "written as JSON": "user" + DOUBLE,
    "string doubled": "user" + " | join('', [@, @])" * 40,
}


@pytest.fixture(scope="module")
def json_secret_provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProviderProcess]:
    directory: Path = tmp_path_factory.mktemp("jmespath")
    with running_emulator(default_seed()) as emulator, provider_process(
        directory, "--endpoint-override", f"kms={emulator.http_url}",
    ) as provider:
        yield provider


def objects(path: str) -> str:
    return ("- objectName: app/config\n  jmesPath:\n"
            f"    - path: {path!r}\n      objectAlias: bomb\n")


@pytest.mark.parametrize("name", sorted(BOMBS))
def test_an_exploding_expression_is_refused_at_once_in_bounded_memory(
    json_secret_provider: ProviderProcess, name: str,
) -> None:
    provider = json_secret_provider
    provider.client.mount(driver_attributes({"objects": objects("user")}))  # warm
    started = time.monotonic()
    with PeakRss(provider.process) as memory, pytest.raises(grpc.RpcError) as caught:
        provider.client.mount(driver_attributes({"objects": objects(BOMBS[name])}), timeout=20)
    seconds = time.monotonic() - started
    # the default budget is about a second of CPU for the costliest step (flattening); without
    # it each of these runs for hours
    assert seconds < 5.0, seconds
    assert memory.growth < 40 * MiB, f"RSS grew {memory.growth / MiB:.1f} MiB"
    assert cpu_after(provider) < 0.2
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "(--max-jmespath-steps)" in (caught.value.details() or "")


def test_ordinary_expressions_still_work(json_secret_provider: ProviderProcess) -> None:
    response = json_secret_provider.client.mount(driver_attributes({"objects": objects(
        "{u: user, both: [user, password], same: user == user}")}))
    assert files_of(response)["bomb"] == b'{"u":"app","both":["app","p@ss"],"same":true}'


def test_the_budget_is_shared_by_every_expression_of_a_mount(tmp_path: Path) -> None:
    """docs/security.md: --max-jmespath-steps bounds the expressions of one Mount together, so
    many cheap expressions cannot add up past it. Each one here costs 17 steps (8 to build its
    value from the test backend's `json-*` secret, 9 to write it as JSON) of a budget of 24: one
    passes, two are refused, in one object or in two."""
    entry = "{path: '[username, password, nested]', objectAlias: %s}"

    def json_object(name: str, *aliases: str) -> str:
        entries = ", ".join(entry % alias for alias in aliases)
        return f"- objectName: {name}\n  objectType: testmem\n  jmesPath: [{entries}]\n"

    settings = ProviderSettings(request_limits=RequestLimits(jmespath_steps=24))
    with running_provider(settings, tmp_path) as provider:
        one = provider.mount(driver_attributes({"objects": json_object("json-a", "one")}))
        assert set(files_of(one)) == {"json-a", "one"}
        for objects in (json_object("json-a", "one", "two"),
                        json_object("json-a", "one") + json_object("json-b", "two")):
            with pytest.raises(grpc.RpcError) as refused:
                provider.mount(driver_attributes({"objects": objects}))
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "(--max-jmespath-steps)" in (refused.value.details() or "")
        # and the next Mount has a budget of its own (not one spent by the mounts above)
        again = provider.mount(driver_attributes({"objects": json_object("json-a", "one")}))
        assert set(files_of(again)) == {"json-a", "one"}


def test_a_step_is_a_list_item_a_map_entry_or_16_characters() -> None:
    """docs/security.md's cost model: a value costs its size, and a value walked in full costs
    its size with shared parts counted each time they appear."""

    def steps(expression: str, document: object) -> int:
        budget = Budget(10**6)
        search(expression, document, budget)
        return 10**6 - budget.remaining

    assert steps("@", list(range(10))) == 1 + 10
    assert steps("@", {"a": 1, "b": 2}) == 1 + 2
    assert steps("@", "x" * 1600) == 1 + 100
    shared, copies = [list(range(10))] * 2, [list(range(10)), list(range(10))]
    assert steps("to_string(@)", shared) == steps("to_string(@)", copies)
    assert steps("to_string(@)", shared) - steps("@", shared) > 2 * 11  # both lists walked
