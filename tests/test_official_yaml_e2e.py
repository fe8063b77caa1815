"""SecretProviderClass YAML the official provider accepts (merge keys) or refuses (a null object
name) behaves the same through the provider socket (issue 14, differential run)."""

from __future__ import annotations

from pathlib import Path

import ack_test_backend
import grpc
import pytest

from ack_secrets_provider.core.server.driver_client import (
    driver_attributes,
    files_of,
    running_provider,
)
from ack_secrets_provider.core.settings import ProviderSettings


def test_a_merge_key_mounts_the_anchored_object_again_under_its_own_alias(tmp_path: Path) -> None:
    ack_test_backend.reset()
    objects = ("- &base {objectName: db, objectType: testmem, objectAlias: one}\n"
               "- <<: *base\n  objectAlias: two\n")
    with running_provider(ProviderSettings(), tmp_path) as provider:
        response = provider.mount(driver_attributes({"objects": objects}))
    assert files_of(response) == {"one": b"value-of-db", "two": b"value-of-db"}


@pytest.mark.parametrize("written", ["null", "~"])
def test_a_null_object_name_is_refused_naming_the_object_and_field(
    tmp_path: Path, written: str,
) -> None:
    ack_test_backend.reset()
    objects = f"- objectName: db\n  objectType: testmem\n- objectName: {written}\n"
    with running_provider(ProviderSettings(), tmp_path) as provider, \
            pytest.raises(grpc.RpcError) as caught:
        provider.mount(driver_attributes({"objects": objects}))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (caught.value.details() or "").startswith(
        "object #2: field objectName is empty or null: the object name must be specified")
    assert ack_test_backend.CALLS == {}  # nothing fetched, not even the good object
