"""`ack-secrets-provider`: the provider's single command-line entry point.

Sub-commands: serve (also what flags alone mean, so the existing chart's flag-only arguments keep
working), emulator, demo, version, plugins, lint, mount. With no argument at all it prints its
help. Go-style single-dash long flags (`-provider-volume=/x`, `-v=5`) are accepted as the
existing provider's klog/flag parsing accepts them. Flag values are checked at start-up
(core/flag_values.py): a bad value stops the command with the flag's name.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NoReturn

from ack_secrets_provider.core import DISTRIBUTION, RUNTIME_NAME, __version__
from ack_secrets_provider.core import flag_values as value
from ack_secrets_provider.core.cloud.endpoints import (
    DEFAULT_ALLOWED_ENDPOINT_SUFFIXES,
    EndpointOverrides,
)
from ack_secrets_provider.core.mount.limits import RequestLimits
from ack_secrets_provider.core.settings import ProviderSettings, RetryPolicy

if TYPE_CHECKING:  # the plugin and server stacks are imported when `serve` runs
    from ack_secrets_provider.core.plugins.backend import Backend
    from ack_secrets_provider.core.server.app import HealthSettings, MetricsSettings

log = logging.getLogger("ack_secrets_provider")

DEFAULT_PROVIDER_VOLUME = "/var/run/secrets-store-csi-providers"
PROG = "ack-secrets-provider"
#: the three names users meet, and what each one is (printed under every --help)
NAMES = f"""\
names: `{PROG}` is this command. `{DISTRIBUTION}` is the Python
distribution (pip install), the Helm chart, its DaemonSet and ServiceAccount and the image, as
for the official provider. `{RUNTIME_NAME}` is the runtime name the provider
reports to the Secrets Store CSI driver (`{PROG} version` shows it). SecretProviderClasses
name the provider `alibabacloud`."""
#: sub-commands implemented in core/commands/<name>.py (add_arguments + run)
COMMANDS = (
    ("version", "print the provider version, protocol and library versions"),
    ("plugins", "list installed backends, credential plugins and emulator parts"),
    ("lint", "check SecretProviderClass manifests offline with the provider's parser"),
    ("mount", "act as the CSI driver: mount a SecretProviderClass through a running provider"),
)


def _normalize_go_flags(argv: Sequence[str]) -> list[str]:
    """`-provider-volume=/x` → `--provider-volume=/x`; `-v=5`/`-v 5` stay valid."""
    result = []
    for arg in argv:
        if arg.startswith("-") and not arg.startswith("--") and len(arg) > 2 and arg[1] != "=":
            name = arg[1:].split("=", 1)[0]
            if len(name) > 1:
                arg = "-" + arg
        result.append(arg)
    return result


def _add_serve_arguments(
    parser: argparse.ArgumentParser, backends: Mapping[str, type[Backend]]
) -> None:
    add = parser.add_argument
    add("--provider-volume", default=DEFAULT_PROVIDER_VOLUME,
        help="directory of the provider socket alibabacloud.sock")
    add("--region", default=None, type=value.region_id,
        help="default region id for SecretProviderClasses without one (unset: discovered at "
             "start-up from the instance metadata, else the node's topology.kubernetes.io/region "
             "label)")
    add("--healthz-port", type=value.port, default=8989, help="HTTP health port (0 disables)")
    add("--healthz-path", type=value.url_path, default="/healthz", help="HTTP liveness path")
    add("--healthz-timeout", type=value.duration, default="5s",
        help="timeout of the health check over the socket")
    add("--healthz-addr", type=value.listen_address, default="0.0.0.0",
        help="address the health server binds")
    add("--metrics-port", type=value.port, default=8990,
        help="Prometheus metrics port (0 disables)")
    add("--metrics-addr", type=value.listen_address, default="0.0.0.0",
        help="address the metrics server binds")
    add("-v", "--v", dest="verbosity", type=value.zero_or_more, default=0,
        help="log verbosity (klog levels: 0 info, 4 debug, 5+ trace)")
    add("--log-format", choices=("text", "json"), default="text",
        help="log lines as text or JSON (one line per mount either way)")
    add("--endpoint-override", action="append", default=[], metavar="SVC_OR_HOST=URL",
        help="send a service (a backend's service, sts, metadata) or one endpoint host to a "
             "base URL; repeatable; also ACK_SECRETS_PROVIDER_ENDPOINT_OVERRIDES")
    add("--allowed-endpoint-suffixes", default=",".join(DEFAULT_ALLOWED_ENDPOINT_SUFFIXES),
        metavar="DOMAINS", type=value.allowed_suffixes,
        help="comma-separated domains an object's endpoint field may name (a "
             "domain allows the hosts below it); other hosts are refused unless an "
             "--endpoint-override maps them; * allows any host")
    add("--default-object-type", default=None, metavar="TYPE",
        help="objectType of objects that name none (default: the installed backend that "
             "claims it, for compatibility the built-in one of the existing provider)")
    add("--provider-identity-namespaces", default="", type=value.namespaces,
        help="comma-separated namespaces allowed to use the provider's own identity "
             "(empty: all namespaces)")
    add("--sts-endpoint", default=None, type=value.host_name,
        help="STS endpoint host (regional or VPC)")
    add("--sts-ca-file", default=None,
        help="CA bundle trusted for an https STS (or metadata) endpoint override (tests, "
             "proxies)")
    add("--kube-api-url", default=None, type=value.base_url,
        help="Kubernetes API base URL (default: in-cluster from KUBERNETES_SERVICE_HOST)")
    add("--kube-token-file", default=ProviderSettings.kube_token_file,
        help="bearer token for the Kubernetes API (default: the pod's ServiceAccount token)")
    add("--kube-ca-file", default=ProviderSettings.kube_ca_file,
        help="CA of the Kubernetes API; empty with an http --kube-api-url")
    add("--rrsa-token-file", default=ProviderSettings.rrsa_token_file,
        help="projected ServiceAccount token of the provider (provider RRSA)")
    add("--disable-imds-v1", action="store_true",
        help="never fall back to IMDSv1 when the metadata service refuses a v2 token")
    add("--cache-ttl", type=value.duration, default="60s",
        help="how long a fetched value is reused (Go duration; 0 disables; a changed secret "
             "reaches pods within this plus the driver's rotationPollInterval; see "
             "docs/rotation-and-caching.md)")
    add("--cache-max-entries", type=value.zero_or_more, default=ProviderSettings.cache_max_entries,
        help="most values held in the cache (least recently used evicted first)")
    add("--cache-max-bytes", type=value.zero_or_more, default=ProviderSettings.cache_max_bytes,
        help="most bytes of values held in the cache (memory only, never disk)")
    add("--no-cache", action="store_true", help="disable the value cache (same as --cache-ttl 0)")
    add("--fetch-concurrency", type=value.at_least_one, default=ProviderSettings.fetch_concurrency,
        help="objects of one mount fetched at once")
    add("--serial-fetch", action="store_true", help="fetch one object at a time")
    add("--endpoint-concurrency", type=value.zero_or_more,
        default=ProviderSettings.endpoint_concurrency,
        help="upstream calls in flight per endpoint from this node (0 = unlimited)")
    add("--max-upstream-response-bytes", type=value.at_least_one,
        default=ProviderSettings.max_upstream_response_bytes,
        help="most bytes of one upstream answer (a backend's service or STS); a larger answer "
             "is refused while reading (secret values are tens of KiB at most)")
    add("--max-call-recv-msg-size", type=value.at_least_one,
        default=ProviderSettings.max_response_bytes,
        metavar="BYTES",
        help="largest Mount response the provider sends; keep it equal to the driver's flag of "
             "the same name (the chart sets both from secrets-store-csi-driver."
             "maxCallRecvMsgSize)")
    add("--grace-period", type=value.duration, default="30s",
        help="time in-flight mounts get on SIGTERM")
    _add_limit_arguments(parser)
    add("--events", action=argparse.BooleanOptionalAction, default=False,
        help="emit Kubernetes Events on pods for failed republishes and rotations")
    add("--no-plugin-autoload", action="store_true",
        help="load only the built-in backends and credential plugins")
    _add_backend_arguments(parser, backends)


def _add_backend_arguments(
    parser: argparse.ArgumentParser, backends: Mapping[str, type[Backend]]
) -> None:
    """The flags each installed backend declares (`Backend.rate_limit`, `Backend.options`)."""
    from ack_secrets_provider.core.plugins.host import endpoint_services

    #: (flag, dest, kind) of the paths checked when serve starts: the STS CA and backends' own
    paths: list[tuple[str, str, str]] = [("--sts-ca-file", "sts_ca_file", "file")]
    for name, backend in backends.items():
        flags: list[tuple[str, dict[str, Any]]] = []
        if backend.rate_limit is not None:
            limit = backend.rate_limit
            flags.append((limit.flag, {"type": value.rate, "default": limit.default,
                                       "dest": f"rate_limit:{name}", "metavar": "PER_SECOND",
                                       "help": limit.help}))
        kinds = {option.flag: option.kind for option in backend.options}
        flags += [(option.flag, {"default": option.default, "help": option.help,
                                 "dest": f"option:{option.dest}",
                                 "metavar": option.dest.upper()}) for option in backend.options]
        for flag, kwargs in flags:
            try:
                parser.add_argument(flag, **kwargs)
            except argparse.ArgumentError:
                log.error("backend %r declares the flag %s, which is already taken; ignored",
                          name, flag)
                continue
            if kinds.get(flag, "text") != "text":
                paths.append((flag, kwargs["dest"], kinds[flag]))
    parser.set_defaults(endpoint_services=endpoint_services(backends.values()),
                        checked_paths=tuple(paths))


def _add_limit_arguments(parser: argparse.ArgumentParser) -> None:
    """Bounds on what a request can make the provider do (docs/security.md)."""
    add = parser.add_argument
    limits = RequestLimits()
    add("--max-request-bytes", type=value.at_least_one,
        default=limits.request_bytes, metavar="BYTES",
        help="largest Mount request (attributes, secrets and permission together) decoded")
    add("--max-objects-bytes", type=value.at_least_one,
        default=limits.objects_bytes, metavar="BYTES",
        help="largest objects parameter (UTF-8 bytes) a Mount may send")
    add("--max-objects", type=value.at_least_one, default=limits.objects, metavar="N",
        help="most objects in one Mount")
    add("--max-jmespath-entries", type=value.at_least_one,
        default=limits.jmespath_entries, metavar="N",
        help="most jmesPath entries in one object")
    add("--max-objects-yaml-nodes", type=value.at_least_one, default=limits.yaml_nodes, metavar="N",
        help="most YAML nodes in objects once aliases and merge keys are expanded")
    add("--max-objects-yaml-depth", type=value.at_least_one, default=limits.yaml_depth, metavar="N",
        help="deepest nesting of lists and maps in objects")
    add("--max-jmespath-length", type=value.at_least_one, default=limits.jmespath_length,
        metavar="CHARS", help="longest JMESPath expression of a jmesPath entry")
    add("--max-jmespath-steps", type=value.at_least_one, default=limits.jmespath_steps,
        metavar="N",
        help="work all jmesPath expressions of one Mount may do together (a step is about one "
             "list item, map entry or 16 characters built)")
    add("--max-concurrent-mounts", type=value.at_least_one,
        default=ProviderSettings.max_concurrent_mounts,
        metavar="N",
        help="Mounts served at once; one more is refused at once with UNAVAILABLE, which the "
             "driver retries (health checks and Version never wait behind Mounts)")
    add("--grpc-keepalive-time", type=value.positive_duration, default="30s",
        help="ping each driver connection after this long without activity")
    add("--grpc-keepalive-timeout", type=value.positive_duration, default="10s",
        help="close a connection whose ping is not answered within this time")
    add("--grpc-max-connection-idle", type=value.positive_duration, default="10m",
        help="close a connection that made no call for this long (the driver reconnects)")


def build_settings(args: argparse.Namespace, environ: dict[str, str]) -> ProviderSettings:
    namespaces = {ns.strip() for ns in args.provider_identity_namespaces.split(",") if ns.strip()}
    cache_ttl = 0.0 if args.no_cache else args.cache_ttl
    values = vars(args)
    return ProviderSettings(
        # the official chart's unreplaced marketplace placeholder means "not set"
        region=None if args.region in (None, "", value.REGION_PLACEHOLDER) else args.region,
        # checked here, not by argparse: the services are the installed backends'
        endpoint_overrides=EndpointOverrides.from_sources(
            args.endpoint_override, environ, args.endpoint_services),
        allowed_endpoint_suffixes=args.allowed_endpoint_suffixes,
        environ=MappingProxyType(dict(environ)),
        backend_options=MappingProxyType({
            key.removeprefix("option:"): value for key, value in values.items()
            if key.startswith("option:")
        }),
        rate_limits=MappingProxyType({
            key.removeprefix("rate_limit:"): float(value) for key, value in values.items()
            if key.startswith("rate_limit:")
        }),
        default_object_type=args.default_object_type or None,
        provider_identity_namespaces=frozenset(namespaces) if namespaces else None,
        sts_endpoint=args.sts_endpoint,
        sts_ca_file=args.sts_ca_file,
        kube_api_url=args.kube_api_url,
        kube_token_file=args.kube_token_file or None,
        kube_ca_file=args.kube_ca_file or None,
        imds_v1_fallback=not args.disable_imds_v1,
        rrsa_token_file=args.rrsa_token_file,
        cache_ttl=cache_ttl,
        cache_max_entries=args.cache_max_entries,
        cache_max_bytes=args.cache_max_bytes,
        fetch_concurrency=1 if args.serial_fetch else args.fetch_concurrency,
        endpoint_concurrency=args.endpoint_concurrency,
        retry=RetryPolicy(),
        request_limits=RequestLimits(
            request_bytes=args.max_request_bytes,
            objects_bytes=args.max_objects_bytes,
            objects=args.max_objects,
            jmespath_entries=args.max_jmespath_entries,
            yaml_nodes=args.max_objects_yaml_nodes,
            yaml_depth=args.max_objects_yaml_depth,
            jmespath_length=args.max_jmespath_length,
            jmespath_steps=args.max_jmespath_steps,
        ),
        max_concurrent_mounts=args.max_concurrent_mounts,
        grpc_keepalive_time=args.grpc_keepalive_time,
        grpc_keepalive_timeout=args.grpc_keepalive_timeout,
        grpc_max_connection_idle=args.grpc_max_connection_idle,
        max_upstream_response_bytes=args.max_upstream_response_bytes,
        max_response_bytes=args.max_call_recv_msg_size,
    )


def configure_logging(verbosity: int, log_format: str) -> None:
    from ack_secrets_provider.core.observability.logs import configure

    configure(verbosity, log_format)


def http_listeners(
    args: argparse.Namespace, healthz_timeout: float
) -> tuple[HealthSettings | None, MetricsSettings | None]:
    """The health and metrics listeners the flags ask for; port 0 disables one (the flags'
    contract, as in the official provider)."""
    from ack_secrets_provider.core.server.app import HealthSettings, MetricsSettings

    health = (HealthSettings(args.healthz_addr, args.healthz_port, args.healthz_path,
                             healthz_timeout) if args.healthz_port > 0 else None)
    metrics = (MetricsSettings(args.metrics_addr, args.metrics_port) if args.metrics_port > 0
               else None)
    return health, metrics


def _flag_error(message: str) -> int:
    """A flag's value refused once `serve` runs (a file, or what needs the installed backends),
    worded and exited as argparse refuses the others."""
    print(f"{PROG} serve: error: {message}", file=sys.stderr)
    return 2


def _cannot_start(problem: Exception) -> int:
    """A start-up problem is the operator's to fix: one clear line, no traceback."""
    print(f"{PROG}: cannot start: {problem}", file=sys.stderr)
    return 1


def unreadable_path(args: argparse.Namespace) -> str | None:
    """The first file or directory flag (serve's own, a backend's `Option.kind`) naming a path
    that cannot be read, worded as argparse words it; None when all can."""
    for flag, dest, kind in args.checked_paths:
        problem = value.unreadable_file(flag, getattr(args, dest), kind)
        if problem:
            return problem
    return None


def cmd_serve(args: argparse.Namespace) -> int:
    from ack_secrets_provider.core.errors import PluginError
    from ack_secrets_provider.core.observability.health import BindError
    from ack_secrets_provider.core.server.app import build_app

    configure_logging(args.verbosity, args.log_format)
    # Block SIGTERM/SIGINT before any thread starts (threads inherit the mask), then wait for
    # them synchronously: no signal can slip in before a handler exists, and no handler runs
    # in the middle of a lock acquisition.
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    unreadable = unreadable_path(args)
    if unreadable:
        return _flag_error(unreadable)
    try:
        settings = build_settings(args, dict(os.environ))
    except ValueError as exc:  # the form was checked by argparse; these need the backends
        return _flag_error(str(exc))
    health, metrics = http_listeners(args, args.healthz_timeout)
    if settings.region is None:
        from ack_secrets_provider.core.cloud.region import RegionUnknown, discover_region

        try:
            found = discover_region(settings)
        except RegionUnknown as exc:
            return _cannot_start(exc)
        log.info("default region %s, from %s (no --region given)", found.region, found.source)
        settings = dataclasses.replace(settings, region=found.region)
    try:
        app = build_app(
            settings, args.provider_volume,
            autoload_third_party=not args.no_plugin_autoload,
            grace_period=args.grace_period,
            health=health,
            metrics=metrics,
            events=args.events,
        )
        app.start()
    except (BindError, PluginError, RuntimeError, OSError) as exc:
        return _cannot_start(exc)
    try:
        received = signal.sigwait(stop_signals)
        log.info("received %s: shutting down", signal.Signals(received).name)
    finally:
        app.stop()
    return 0


def shows_default(action: argparse.Action) -> bool:
    """Whether `--help` and docs/cli.md state a flag's default: not when there is none (None,
    empty, a switch's False); a default of 0 (-v) is stated, though 0 == False."""
    return action.default is not False and action.default not in (None, [], "",
                                                                  argparse.SUPPRESS)


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions as written (paragraphs, lists), and each flag's default after its help."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "%(default)" in text or not action.option_strings or not shows_default(action):
            return text
        return f"{text} (default: %(default)s)"


class _Parser(argparse.ArgumentParser):
    """Errors in one line: the usage of `serve` (forty flags) would bury the message."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n(`{self.prog} --help` lists the flags)\n")


DEMO_DESCRIPTION = """\
Run the whole job on this machine: start the loopback emulator with sample data and a provider
on a temporary socket, mount the sample SecretProviderClass exactly as the driver would, write
the files into --output the way the driver does, rotate a secret in the emulator and mount
again to show the version change. Nothing leaves 127.0.0.1. The sample files ship with the
package (the same as examples/ in the repository), so it runs from any folder."""


def _lazy(module: str, function: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        result: int = getattr(importlib.import_module(module), function)(args)
        return result

    return run


def build_parser(
    command: str | None = None, *, autoload_third_party: bool = True
) -> argparse.ArgumentParser:
    """The argument parser; `command` (the sub-command about to run) lets others stay lazy.

    `serve` takes the flags the installed backends declare (only the built-ins' when
    `autoload_third_party` is off, as `--no-plugin-autoload` loads only them).
    """
    from ack_secrets_provider.core.plugins.host import backend_classes

    parser = _Parser(
        prog=PROG,
        description="Alibaba Cloud provider for the Secrets Store CSI driver. Flags without a "
                    "sub-command mean `serve` (as the existing chart runs it).",
        epilog=NAMES,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command")
    serve = sub.add_parser(
        "serve", help="serve the driver on the provider socket (what flags alone mean)",
        description="Serve the Secrets Store CSI driver on <provider-volume>/alibabacloud.sock "
                    "until SIGTERM. Durations are Go durations (30s, 1m30s) or seconds.",
        epilog=NAMES)
    _add_serve_arguments(
        serve,
        backend_classes(autoload_third_party=autoload_third_party)
        if command in (None, "serve") else {},
    )
    serve.set_defaults(func=cmd_serve)

    emulator = sub.add_parser(
        "emulator", help="run the loopback Alibaba Cloud emulator",
        description="Serve the installed emulator parts (the backends' services, STS and "
                    "instance metadata) on 127.0.0.1 in their real wire format (signatures "
                    "verified), with the data of --data, until SIGTERM. The first stdout line "
                    "is JSON saying where it listens (docs/emulator.md).")
    if command in (None, "emulator"):
        # The emulator's modules are only imported when they are used: `serve` starts faster.
        from ack_secrets_provider.core.emulator import cli as emulator_cli

        emulator_cli.add_arguments(emulator)
        emulator.set_defaults(func=emulator_cli.run)

    demo = sub.add_parser("demo", help="run the whole job against the emulator, end to end",
                          description=DEMO_DESCRIPTION)
    demo.add_argument("--output", default="demo-mount", help="directory to write the files into")
    demo.set_defaults(func=_lazy("ack_secrets_provider.core.commands.demo", "run"))

    for name, summary in COMMANDS:
        subparser = sub.add_parser(name, help=summary)
        if command not in (None, name):
            continue  # listed in the help; its module (and what it imports) is not needed
        module = importlib.import_module(f"ack_secrets_provider.core.commands.{name}")
        subparser.description = module.__doc__
        module.add_arguments(subparser)
        subparser.set_defaults(func=_lazy(module.__name__, "run"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = _normalize_go_flags(list(sys.argv[1:] if argv is None else argv))
    if not args_list:
        # Nothing asked: help, not a server on the host's paths (the image's entrypoint and the
        # chart always pass `serve` or flags).
        build_parser().print_help()
        return 2
    # The existing chart runs the binary with flags only: that means `serve`.
    if args_list[0].startswith("-") and args_list[0] not in ("-h", "--help", "--version"):
        args_list = ["serve", *args_list]
    parser = build_parser(args_list[0],
                          autoload_third_party="--no-plugin-autoload" not in args_list)
    args = parser.parse_args(args_list)
    func: Callable[[argparse.Namespace], int] = args.func
    return func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
