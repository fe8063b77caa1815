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
from ack_secrets_provider.core.server.driver_client import driver_attributes, files_of

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
