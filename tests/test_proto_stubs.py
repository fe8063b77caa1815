"""The checked-in gRPC stubs must match service.proto, and the proto must match the driver."""

from __future__ import annotations

from pathlib import Path

from ack_secrets_provider.core.proto import generate, service_pb2

PROTO_DIR = Path(generate.__file__).parent


def test_checked_in_stubs_are_not_stale(tmp_path: Path) -> None:
    for fresh in generate.generate(tmp_path):
        checked_in = PROTO_DIR / fresh.name
        assert checked_in.read_bytes() == fresh.read_bytes(), (
            f"{checked_in.name} is stale: run python -m ack_secrets_provider.core.proto.generate"
        )


def _fields(message: object) -> dict[str, tuple[int, int]]:
    descriptor = message.DESCRIPTOR  # type: ignore[attr-defined]
    return {f.name: (f.number, f.type) for f in descriptor.fields}


def test_field_numbers_match_the_driver_contract() -> None:
    from google.protobuf.descriptor import FieldDescriptor as F

    assert service_pb2.DESCRIPTOR.package == "v1alpha1"
    service = service_pb2.DESCRIPTOR.services_by_name["CSIDriverProvider"]
    assert service.full_name == "v1alpha1.CSIDriverProvider"
    assert sorted(service.methods_by_name) == ["Mount", "Version"]
    assert _fields(service_pb2.VersionRequest) == {"version": (1, F.TYPE_STRING)}
    assert _fields(service_pb2.VersionResponse) == {
        "version": (1, F.TYPE_STRING), "runtime_name": (2, F.TYPE_STRING),
        "runtime_version": (3, F.TYPE_STRING),
    }
    assert _fields(service_pb2.MountRequest) == {
        "attributes": (1, F.TYPE_STRING), "secrets": (2, F.TYPE_STRING),
        "target_path": (3, F.TYPE_STRING), "permission": (4, F.TYPE_STRING),
        "current_object_version": (5, F.TYPE_MESSAGE),
    }
    assert _fields(service_pb2.MountResponse) == {
        "object_version": (1, F.TYPE_MESSAGE), "error": (2, F.TYPE_MESSAGE),
        "files": (3, F.TYPE_MESSAGE),
    }
    assert _fields(service_pb2.File) == {
        "path": (1, F.TYPE_STRING), "mode": (2, F.TYPE_INT32), "contents": (3, F.TYPE_BYTES),
    }
    assert _fields(service_pb2.ObjectVersion) == {
        "id": (1, F.TYPE_STRING), "version": (2, F.TYPE_STRING),
    }
    assert _fields(service_pb2.Error) == {"code": (1, F.TYPE_STRING)}
