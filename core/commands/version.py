"""`ack-secrets-provider version`: what is running, for bug reports and support.

Shows the provider version, the driver protocol, the runtime name the driver sees, Python and
the versions of the libraries the provider requires (the Alibaba Cloud SDKs and gRPC among them:
the usual suspects of a behaviour change).
"""

from __future__ import annotations

import argparse
import platform
import re
import sys
from importlib.metadata import PackageNotFoundError, requires
from importlib.metadata import version as dist_version

from ack_secrets_provider.core import DISTRIBUTION, RUNTIME_NAME, __version__
from ack_secrets_provider.core.commands.output import Output, print_json

PROTOCOL = "v1alpha1"

def libraries() -> list[str]:
    """The distributions the provider requires (its pyproject `dependencies`), by name."""
    names = []
    for requirement in requires(DISTRIBUTION) or []:
        if "extra ==" not in requirement:
            names.append(re.split(r"[\s;<>=!~\[(]", requirement, maxsplit=1)[0])
    return sorted(names, key=str.lower)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=("text", "json"), default="text",
                        help="text for people, json for scripts and bug reports")


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
        "libraries": {name: installed(name) for name in libraries()},
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
