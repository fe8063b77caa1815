"""`ack-secrets-provider emulator`: run the emulator until SIGTERM/SIGINT.

The first line on stdout is JSON (`http_url`, `address`, `https_url`, `tls_address`, `root_ca`,
`intermediate_ca`, `tls_dir`, `services`) so scripts can start it on port 0 and read where it
listens; the following lines are for people.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import tempfile
import threading
from types import FrameType

from ack_secrets_provider.core.emulator.server import Emulator, parse_listen
from ack_secrets_provider.core.emulator.testing import describe


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--listen", default="127.0.0.1:0", metavar="127.0.0.1:PORT",
                        help="plain-HTTP listener, loopback only (port 0 picks a free port)")
    parser.add_argument("--data", metavar="FILE",
                        help="seed YAML (access keys, policies, one section per emulator part); "
                        "see docs/emulator.md")
    parser.add_argument("--tls-listen", metavar="127.0.0.1:PORT",
                        help="also serve HTTPS here, with a generated test CA chain")
    parser.add_argument("--tls-dir", metavar="DIR",
                        help="where to write root.pem, intermediate.pem and the server chain "
                        "(default: a temporary directory)")


def run(args: argparse.Namespace) -> int:
    try:
        parse_listen(args.listen)
        if args.tls_listen:
            parse_listen(args.tls_listen)
        emulator = Emulator(args.data)
    except ValueError as exc:
        print(f"emulator: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    scratch = None
    try:
        tls_dir = args.tls_dir
        if args.tls_listen and not tls_dir:
            scratch = tempfile.TemporaryDirectory(prefix="emulator-tls-")
            tls_dir = scratch.name
        try:
            emulator.start(args.listen, tls_listen=args.tls_listen, tls_dir=tls_dir)
        except OSError as exc:
            print(f"emulator: cannot listen: {exc.strerror or exc}", file=sys.stderr)
            return 1
        info = describe(emulator)
        print(json.dumps(info), flush=True)
        print(f"emulator listening on {info['http_url']}"
              + (f" and {info['https_url']} (CA {info['root_ca']})" if info["https_url"] else "")
              + f"; services: {', '.join(info['services']) or 'none'}", flush=True)
        while not stop.wait(0.5):
            pass
        return 0
    finally:
        emulator.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if scratch is not None:
            scratch.cleanup()


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="ack-secrets-provider emulator",
                                     description="Loopback Alibaba Cloud emulator")
    add_arguments(parser)
    return run(parser.parse_args(argv))
