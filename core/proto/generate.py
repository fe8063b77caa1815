"""Generate the Python stubs of service.proto with grpcio-tools.

Protoc is run on a copy of the .proto placed under the package path, so that the generated gRPC
module imports `ack_secrets_provider.core.proto.service_pb2` (not a bare `service_pb2`).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PACKAGE_PATH = Path("ack_secrets_provider", "core", "proto")
OUTPUTS = ("service_pb2.py", "service_pb2.pyi", "service_pb2_grpc.py")


def generate(out_dir: Path) -> list[Path]:
    """Write the generated stubs into `out_dir` and return their paths."""
    from grpc_tools import protoc

    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp, "src")
        (src / PACKAGE_PATH).mkdir(parents=True)
        shutil.copy(HERE / "service.proto", src / PACKAGE_PATH / "service.proto")
        gen = Path(tmp, "gen")
        gen.mkdir()
        code = protoc.main([
            "grpc_tools.protoc",
            f"-I{src}",
            f"--python_out={gen}",
            f"--pyi_out={gen}",
            f"--grpc_python_out={gen}",
            str(PACKAGE_PATH / "service.proto"),
        ])
        if code != 0:
            raise RuntimeError(f"protoc failed with exit code {code}")
        out_dir.mkdir(parents=True, exist_ok=True)
        written = []
        for name in OUTPUTS:
            target = out_dir / name
            shutil.copy(gen / PACKAGE_PATH / name, target)
            written.append(target)
        return written


if __name__ == "__main__":
    for path in generate(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE):
        print(path)
