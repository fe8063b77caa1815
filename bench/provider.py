"""Run the real `ack-secrets-provider serve` for the benchmark, outside a cluster.

The same entry point (`ack_secrets_provider.core.cli.main`) and flags as the DaemonSet; the only
difference is two settings the command line does not expose because in a pod they are fixed
paths: the Kubernetes API token file and CA (pod-level RRSA reads ServiceAccount annotations with
them). The benchmark points them at a temporary token for its fake Kubernetes API:

    python bench/provider.py --kube-token-file PATH -- serve --provider-volume ... [flags]
"""

from __future__ import annotations

import sys
from dataclasses import replace


def main() -> int:
    args = sys.argv[1:]
    token_file = None
    if args[:1] == ["--kube-token-file"]:
        token_file, args = args[1], args[2:]
    if args[:1] == ["--"]:
        args = args[1:]
    from ack_secrets_provider.core import cli

    original = cli.build_settings

    def build_settings(parsed, environ):  # type: ignore[no-untyped-def]
        settings = original(parsed, environ)
        return replace(settings, kube_token_file=token_file, kube_ca_file=None)

    cli.build_settings = build_settings  # type: ignore[assignment]
    return cli.main(args)


if __name__ == "__main__":
    sys.exit(main())
