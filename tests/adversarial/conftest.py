"""The adversarial suite: hostile input against a provider started as a real process (helpers in
tests/hostile_provider.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hostile_provider import ProviderProcess, provider_process


@pytest.fixture(scope="module")
def parser_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProviderProcess]:
    """One provider with the default limits, shared by the hostile-request tests."""
    with provider_process(tmp_path_factory.mktemp("hostile-requests")) as provider:
        yield provider
