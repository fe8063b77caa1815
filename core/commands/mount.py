"""`ack-secrets-provider mount`: be the Secrets Store CSI driver for one volume, on a laptop.

Sends the Mount call the driver would send to a running provider over its unix socket (the
SecretProviderClass parameters, then the pod's volume attributes over them, then the
`csi.storage.k8s.io/*` keys and the ServiceAccount token, built by `core.testing.driver_attributes`
exactly as the driver builds them), then writes the returned files into the target directory the
way the driver does (a `..data` symlink swapped atomically) and prints what it wrote. File
contents are never printed.

Exit status: 0 mounted, 1 the provider refused or failed the mount, 2 bad command-line input.
"""

from __future__ import annotations

import argparse
import base64
import errno
import json
import socket
import stat
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from ack_secrets_provider.core.commands.manifests import ManifestError, find_spc, read_text
from ack_secrets_provider.core.commands.output import Output, plural, print_json

SOCKET_NAME = "alibabacloud.sock"
DEFAULT_AUDIENCE = "sts.aliyuncs.com"
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad input on the command line; the message names the flag and the fix."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--socket", required=True, metavar="PATH",
        help=f"the provider socket, or the directory holding {SOCKET_NAME}")
    add("--spc", required=True, metavar="FILE",
        help="YAML file with the SecretProviderClass (- reads stdin)")
    add("--spc-name", metavar="NAME", help="which SecretProviderClass when FILE holds several")
    add("--target", required=True, metavar="DIR",
        help="directory to write the files into: new, empty, or written by this command before")
    add("--force", action="store_true",
        help="write into a non-empty --target this command did not write (files beside yours; "
             "nothing of yours is replaced or removed)")
    add("--pod-name", default="mount-cli", help="pod name sent to the provider")
    add("--pod-namespace", default="default", metavar="NS",
        help="namespace of the pod sent to the provider (pod RRSA and nodePublishSecretRef "
             "read it)")
    add("--pod-uid", default=None, help="pod UID (default: a random one)")
    add("--service-account", default="default", metavar="SA",
        help="the pod's ServiceAccount name sent to the provider (pod RRSA finds its role "
             "through it)")
    add("--token-file", metavar="FILE",
        help="ServiceAccount token (JWT) sent as the driver's serviceAccount.tokens entry")
    add("--token-audience", default=DEFAULT_AUDIENCE,
        help="audience of --token-file (the one RRSA uses)")
    add("--secrets-file", metavar="FILE",
        help="nodePublishSecretRef data: a YAML or JSON map of strings")
    add("--permission", default="0644", help="default file mode, octal (driver: filePermission)")
    add("--timeout", default="30s", help="deadline of the Mount call, e.g. 30s or 2m")
    add("--volume-attribute", action="append", default=[], metavar="KEY=VALUE",
        help="a pod volumeAttributes entry (repeatable); overrides SPC parameters")
    add("--format", choices=("text", "json"), default="text",
        help="text: a table for people; json: target, changed and files for scripts")


# -- the request ---------------------------------------------------------------------------


def socket_path(value: str) -> Path:
    path = Path(value)
    try:
        if path.is_dir():
            path = path / SOCKET_NAME
        mode = path.stat().st_mode
    except PermissionError:  # a directory this user may not enter (the provider volume is root's)
        raise UsageError(f"--socket: permission denied looking up {path}: run mount as the user "
                         "that runs `serve` (the driver runs as root), for example with "
                         "sudo") from None
    except OSError:
        raise UsageError(f"--socket: no provider socket at {path}; start a provider with "
                         "`ack-secrets-provider serve --provider-volume DIR` and pass "
                         f"DIR/{SOCKET_NAME}") from None
    if not stat.S_ISSOCK(mode):
        raise UsageError(f"--socket: {path} is not a unix socket")
    return path


def unreachable(path: Path) -> str | None:
    """Why nothing can answer on the socket, found at once (None: a process accepts there).

    Without this check a dead or forbidden socket costs the whole --timeout (gRPC keeps
    reconnecting) and ends in a bare DEADLINE_EXCEEDED.
    """
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(2.0)
        try:
            probe.connect(str(path))
        except ConnectionRefusedError:
            return (f"no provider is listening on {path} (connection refused) - is `serve` "
                    "running? Start it with `ack-secrets-provider serve --provider-volume "
                    f"{path.parent}`")
        except PermissionError:
            return (f"permission denied connecting to {path}: the socket belongs to another "
                    "user; run mount as the user that runs `serve` (the driver runs as root), "
                    "for example with sudo")
        except OSError as exc:
            reason = exc.strerror or errno.errorcode.get(exc.errno or 0) or str(exc)
            return f"cannot connect to the provider on {path}: {reason}"
    return None


def _parameters(args: argparse.Namespace) -> tuple[str, dict[str, str]]:
    """The SecretProviderClass's name and parameters (as the driver reads them: strings)."""
    try:
        doc = find_spc(read_text(args.spc), args.spc_name)
    except ManifestError as exc:
        raise UsageError(f"--spc {args.spc}: {exc.message}") from None
    spec = doc.data.get("spec") or {}
    raw = (spec.get("parameters") or {}) if isinstance(spec, dict) else {}
    if not isinstance(raw, dict):
        raise UsageError(f"--spc {args.spc}: spec.parameters must be a map; run "
                         "`ack-secrets-provider lint` on the file")
    bad = sorted(str(k) for k, v in raw.items() if not isinstance(v, str))
    if bad:
        raise UsageError(f"--spc {args.spc}: parameter(s) {', '.join(bad)} are not strings (the "
                         "API server would refuse the manifest); quote them, or run "
                         "`ack-secrets-provider lint` on the file")
    return doc.name or "secretproviderclass", {str(k): v for k, v in raw.items()}


def _volume_attributes(entries: list[str]) -> dict[str, str]:
    result = {}
    for entry in entries:
        key, sep, value = entry.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--volume-attribute {entry!r} must look like KEY=VALUE, for "
                             "example --volume-attribute usePodServiceAccountToken=true")
        result[key.strip()] = value
    return result


def _secrets(path: str | None) -> str:
    """The nodePublishSecretRef data as the driver sends it: a JSON map of strings."""
    if path is None:
        return "null"
    try:
        data = yaml.safe_load(read_text(path))
    except ManifestError as exc:
        raise UsageError(f"--secrets-file {path}: {exc.message}") from None
    except yaml.YAMLError:
        raise UsageError(f"--secrets-file {path}: not valid YAML or JSON") from None
    except ValueError:  # an unquoted 2024-02-30: PyYAML's date raises, not YAMLError
        raise UsageError(f"--secrets-file {path}: not valid YAML: a value written as a date or "
                         "time is not one; quote it to keep it text") from None
    except RecursionError:  # PyYAML recurses once per level
        raise UsageError(f"--secrets-file {path}: not valid YAML or JSON: nested too deeply to "
                         "be read") from None
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise UsageError(f"--secrets-file {path}: must be a map of strings, such as "
                         "'access_key: LTAI...' (quote numbers)")
    return json.dumps({str(k): v for k, v in data.items()})


def _token_expiration(token: str) -> str:
    """The token's `exp` claim as the driver reports it, or one hour from now."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        moment = datetime.fromtimestamp(int(claims["exp"]), UTC)
    except (IndexError, ValueError, KeyError, TypeError, OverflowError):
        moment = datetime.now(UTC) + timedelta(hours=1)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _tokens(args: argparse.Namespace) -> tuple[dict[str, str] | None, str]:
    if args.token_file is None:
        return None, ""
    try:
        token = read_text(args.token_file).strip()
    except ManifestError as exc:
        raise UsageError(f"--token-file {args.token_file}: {exc.message}") from None
    if not token:
        raise UsageError(f"--token-file {args.token_file} is empty")
    return {args.token_audience: token}, _token_expiration(token)


def _permission(text: str) -> str:
    """The driver sends the default mode as a JSON string of its decimal value."""
    try:
        mode = int(text, 8)
    except ValueError:
        mode = -1
    if not 0 <= mode <= 0o777:
        raise UsageError(f"--permission {text!r} must be an octal file mode such as 0644")
    return json.dumps(str(mode))


def build_request(args: argparse.Namespace) -> dict[str, Any]:
    from ack_secrets_provider.core.flag_values import positive_duration
    from ack_secrets_provider.core.server.driver_client import PodRef, driver_attributes

    spc_name, parameters = _parameters(args)
    tokens, expiration = _tokens(args)
    pod = PodRef(name=args.pod_name, namespace=args.pod_namespace,
                 uid=args.pod_uid or str(uuid.uuid4()), service_account=args.service_account)
    try:  # 0 would fail the call at once with a bare DEADLINE_EXCEEDED
        timeout = positive_duration(args.timeout)
    except argparse.ArgumentTypeError as exc:
        raise UsageError(f"--timeout: {exc}") from None
    extra = {"token_expiration": expiration} if expiration else {}
    return {
        "spc_name": spc_name,
        "attributes": driver_attributes(
            parameters, pod=pod, spc_name=spc_name,
            volume_attributes=_volume_attributes(args.volume_attribute), tokens=tokens, **extra,
        ),
        "secrets": _secrets(args.secrets_file),
        "permission": _permission(args.permission),
        "timeout": timeout,
    }


# -- the call and the files ------------------------------------------------------------------


def _grpc_failure(exc: Any) -> tuple[str, str]:
    code = exc.code() if callable(getattr(exc, "code", None)) else None
    details = exc.details() if callable(getattr(exc, "details", None)) else None
    return (code.name if code is not None else "UNKNOWN"), (details or str(exc))


def _failed(err: Output, problem: str) -> int:
    """The provider or the files refused the mount (not the command line: that is UsageError)."""
    err.line(f"{err.style('mount failed', 'bold', 'red')}: {problem}")
    return EXIT_FAILED


def mount(args: argparse.Namespace, out: Output, err: Output) -> int:
    import grpc

    from ack_secrets_provider.core.commands.atomic_writer import (
        FileToWrite,
        UnsafeTarget,
        check_target,
        write_atomically,
    )
    from ack_secrets_provider.core.server.driver_client import ProviderClient

    path = socket_path(args.socket)
    request = build_request(args)
    target = Path(args.target).resolve()
    try:
        check_target(target, force=args.force)
    except UnsafeTarget as exc:
        raise UsageError(f"--target: {exc}") from None
    except OSError as exc:  # a directory this user may not enter or list
        raise UsageError(f"--target: cannot use {target} ({exc.strerror or exc}); choose a "
                         "directory this user may write, or run mount as its owner") from None
    problem = unreachable(path)
    if problem is not None:
        return _failed(err, problem)
    if err.colour:  # progress belongs on an interactive terminal only
        err.line(err.style(f"mounting {request['spc_name']} through {path} ...", "dim"))
    client = ProviderClient(path)
    try:
        response = client.mount(request["attributes"], secrets=request["secrets"],
                                permission=request["permission"], target_path=str(target),
                                timeout=request["timeout"])
    except grpc.RpcError as exc:
        code, message = _grpc_failure(exc)
        return _failed(err, f"{err.style(code, 'bold')}: {message}")
    finally:
        client.close()
    if response.error.code:
        return _failed(err, response.error.code)
    files = [FileToWrite(item.path, item.mode & 0o777, item.contents) for item in response.files]
    try:
        changed = write_atomically(target, files, force=args.force)
    except UnsafeTarget as exc:
        return _failed(err, str(exc))
    except OSError as exc:
        return _failed(err, f"cannot write into {target}: {exc.strerror or exc}")
    versions = {item.id: item.version for item in response.object_version}
    rows = [{"path": f.path, "size": len(f.contents), "mode": f"{f.mode:04o}",
             "version": versions.get(f.path, "")} for f in files]
    if args.format == "json":
        print_json({"target": str(target), "changed": changed, "files": rows})
        return EXIT_OK
    out.table(["FILE", "SIZE", "MODE", "VERSION"],
              [[r["path"], _size(r["size"]), r["mode"], r["version"]] for r in rows],
              right=(1,), styles={0: ("cyan",)})
    state = "written to" if changed else "unchanged in"
    out.line(out.style(f"{plural(len(files), 'file')} {state} {target}", "green"))
    return EXIT_OK


def _size(count: int) -> str:
    if count < 1024:
        return f"{count} B"
    if count < 1024 * 1024:
        return f"{count / 1024:.1f} KiB"
    return f"{count / (1024 * 1024):.1f} MiB"


def run(args: argparse.Namespace) -> int:
    out, err = Output(), Output(sys.stderr)
    try:
        return mount(args, out, err)
    except UsageError as exc:
        err.line(f"{err.style('error', 'bold', 'red')}: {exc}")
        return EXIT_USAGE

