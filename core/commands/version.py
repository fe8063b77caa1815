"""`ack-secrets-provider version`: what is running, for bug reports and support.

Shows the provider version, the driver protocol, the runtime name the driver sees, Python and
the versions of the Alibaba Cloud SDKs and gRPC (the usual suspects of a behaviour change).
"""

from __future__ import annotations

import argparse
import platform
import sys
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as dist_version

from ack_secrets_provider.core import DISTRIBUTION, RUNTIME_NAME, __version__
from ack_secrets_provider.core.commands.output import Output, print_json

PROTOCOL = "v1alpha1"

#: distributions whose versions matter when reporting a problem
LIBRARIES = (
    "alibabacloud-kms20160120",
    "alibabacloud-oos20190601",
    "alibabacloud-sts20150401",
    "alibabacloud-credentials",
    "alibabacloud-tea-openapi",
    "grpcio",
    "protobuf",
    "stevedore",
    "pluggy",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=("text", "json"), default="text")


def installed(name: str) -> str | None:
    try:
        return dist_version(name)
    except PackageNotFoundError:
        return None


def collect() -> dict[str, object]:
    return {
        "provider": {"distribution": DISTRIBUTION, "version": __version__},
        "protocol": PROTOCOL,
        "runtime_name": RUNTIME_NAME,
        "python": {"version": platform.python_version(),
                   "implementation": platform.python_implementation()},
        "libraries": {name: installed(name) for name in LIBRARIES},
    }


def run(args: argparse.Namespace) -> int:
    info = collect()
    if args.format == "json":
        print_json(info)
        return 0
    out = Output()
    out.line(f"{out.style(RUNTIME_NAME, 'bold')} {__version__}")
    rows = [
        ["protocol", PROTOCOL],
        ["python", f"{platform.python_version()} ({platform.python_implementation()}, "
                   f"{sys.platform})"],
    ]
    libraries = info["libraries"]
    assert isinstance(libraries, dict)
    rows += [[name, value or "not installed"] for name, value in libraries.items()]
    out.table(["COMPONENT", "VERSION"], rows, styles={0: ("dim",)})
    return 0
