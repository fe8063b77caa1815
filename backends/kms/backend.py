"""KMS Secrets Manager backend (objectType `kms`): GetSecretValue through alibabacloud-kms20160120.

- `objectVersion` → `VersionId`, `objectVersionLabel` → `VersionStage`; the version reported is
  the VersionId KMS returns. `SecretDataType: binary` values are base64-decoded to raw bytes.
- Endpoint per object: `kmsEndpoint` (an object field this backend declares), else
  `kms-vpc.<region>.aliyuncs.com`. An ARN
  (`acs:kms:<region>:<account>:secret/<name>`) sets the region, and the full ARN is sent as
  `SecretName` (the API accepts name or ARN, and requires the ARN for a secret shared from
  another account).
- A dedicated gateway (`<kms-instance-id>.cryptoservice.kms.aliyuncs.com`) is dialled over HTTPS
  trusting the instance CA: `--kms-ca-file` if set, else `<--kms-ca-dir>/<region>.pem` (or every
  PEM of that directory), else the CA bundled for the object's region (`ca/<region>.pem` in this
  package). Those flags, the rate-limit flag and the default objectType are declared here.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ack_secrets_provider.core.cloud.answers import body_of, field, optional_field
from ack_secrets_provider.core.cloud.endpoints import Endpoint, check_endpoint_host
from ack_secrets_provider.core.cloud.sdk_errors import ServiceHints
from ack_secrets_provider.core.errors import (
    FailedPrecondition,
    UnexpectedAnswer,
    UpstreamDataError,
)
from ack_secrets_provider.core.mount.arn import Arn, object_arn
from ack_secrets_provider.core.mount.spec import ObjectSpec
from ack_secrets_provider.core.plugins.backend import FetchContext, Option, RateLimit, SecretValue
from ack_secrets_provider.core.plugins.toolkit import SdkBackend, endpoint_example

log = logging.getLogger(__name__)

ENDPOINT_FIELD = "kmsEndpoint"
CA_FILE = Option("--kms-ca-file", help="CA bundle for dedicated KMS gateways", kind="file")
CA_DIR = Option("--kms-ca-dir", help="directory of <region>.pem CAs for dedicated gateways",
                kind="directory")
DEDICATED_SUFFIX = ".cryptoservice.kms.aliyuncs.com"
#: what the documentation's own placeholders stand for, in example messages
_EXAMPLE_VALUES = MappingProxyType({"kms-instance-id": "kst-hzz62ee2a4f7ab1xxxxxx"})

HINTS = ServiceHints(
    service="KMS",
    object_kind="KMS secret",
    read_action="kms:GetSecretValue",
    extra_actions=("kms:Decrypt",),
    not_found_advice=(
        "check objectName, objectVersion / objectVersionLabel, and that the secret lives in "
        "the region or KMS instance of this endpoint"
    ),
    tls_advice=(
        "for a dedicated KMS gateway give the instance CA (downloadable from the KMS console) "
        "with --kms-ca-file / --kms-ca-dir (Helm: kmsCaBundle.configMap or kmsCaBundle.secret)"
    ),
    permission_codes=("Forbidden.KMS", "Forbidden.Decrypt"),
)


def is_dedicated_gateway(host: str) -> bool:
    return host.lower().endswith(DEDICATED_SUFFIX)


def bundled_ca(region: str) -> Path | None:
    """The shipped CA (intermediate) of KMS instances in `region`, or None if we have none."""
    path = Path(str(resources.files(__package__).joinpath("ca", f"{region}.pem")))
    return path if path.is_file() else None


def _secret_arn(spec: ObjectSpec) -> Arn | None:
    """The parsed ARN of a kms object, or None for a plain name; InvalidArgument if malformed."""
    return object_arn(
        spec, service="kms", resource_type="secret", kind="a KMS secret",
        example="acs:kms:cn-hangzhou:123456789012:secret/my-secret",
    )


class KmsBackend(SdkBackend):
    """Reads KMS secrets with GetSecretValue (one upstream attempt per `fetch`)."""

    object_type = "kms"
    service = "kms"
    api = "GetSecretValue"
    batch_api = "GetSecretValue"
    max_batch = 1
    object_fields = MappingProxyType({ENDPOINT_FIELD: "KMS endpoint host for this object"})
    #: objects without objectType are KMS secrets, as in the existing provider
    is_default_type = True
    rate_limit = RateLimit(
        "--max-concurrent-kms-secret-pulls", what="KMS calls per second", default=10.0,
        help="KMS calls per second from this node (the existing provider's flag: a rate, not a "
             "concurrency; 0 = unlimited; a call that cannot get a slot before the mount's "
             "deadline fails at once instead of queueing)",
    )
    options = (CA_FILE, CA_DIR)
    hints = HINTS
    region_in_host = re.compile(r"^kms(?:-vpc)?\.([a-z0-9-]+)\.aliyuncs\.com$")

    def new_client(self, config: Any) -> Any:
        from alibabacloud_kms20160120.client import Client

        return Client(config)

    # -- validation and endpoints (pure) ------------------------------------------------------

    def validate(self, spec: ObjectSpec) -> None:
        arn = _secret_arn(spec)
        explicit = spec.fields.get(ENDPOINT_FIELD)
        if explicit:
            check_endpoint_host(
                explicit, where=spec.describe(), field_name=ENDPOINT_FIELD,
                example=endpoint_example(explicit, region=arn.region if arn else None,
                                         default="kms-vpc.cn-hangzhou.aliyuncs.com",
                                         values=_EXAMPLE_VALUES),
            )

    def endpoint(self, spec: ObjectSpec, region: str | None) -> Endpoint:
        arn = _secret_arn(spec)
        return self.regional_endpoint(
            spec, explicit=spec.fields.get(ENDPOINT_FIELD), field_name=ENDPOINT_FIELD,
            region=arn.region if arn else region, default_host="kms-vpc.{region}.aliyuncs.com",
        )

    # -- fetching -----------------------------------------------------------------------------

    def object_region(self, spec: ObjectSpec, ctx: FetchContext) -> str | None:
        """ARN region, else the region in a regional endpoint host, else the mount's region."""
        arn = _secret_arn(spec)
        return self.region(ctx, arn.region if arn else None)

    def ca_files(self, spec: ObjectSpec, ctx: FetchContext) -> tuple[str, ...]:
        """CA files trusted for this object's endpoint; () = the SDK's default (public) trust."""
        endpoint = ctx.endpoint
        if endpoint.protocol != "https" or not is_dedicated_gateway(endpoint.host):
            return ()
        ca_file = self.settings.backend_options.get(CA_FILE.dest)
        ca_dir = self.settings.backend_options.get(CA_DIR.dest)
        if ca_file:
            return (ca_file,)
        region = self.object_region(spec, ctx)
        if ca_dir:
            directory = Path(ca_dir)
            try:
                if region and (directory / f"{region}.pem").is_file():
                    return (str(directory / f"{region}.pem"),)
                bundle = sorted(
                    str(p) for p in directory.iterdir()
                    if p.is_file() and p.suffix in (".pem", ".crt")
                ) if directory.is_dir() else []
            except OSError as exc:
                # checked readable at start; permissions changed since (a remounted volume)
                raise FailedPrecondition(
                    f"{spec.describe()}: the KMS CA directory {str(directory)!r} (--kms-ca-dir) "
                    f"cannot be listed ({exc.strerror or type(exc).__name__}); make it readable "
                    f"by the provider (Helm: kmsCaBundle), or give the CA of the KMS instance "
                    f"behind {endpoint.host} with --kms-ca-file"
                ) from None
            if bundle:
                return tuple(bundle)
            raise FailedPrecondition(
                f"{spec.describe()}: the KMS CA directory {str(directory)!r} (--kms-ca-dir) has "
                f"no {region or '<region>'}.pem and no other .pem/.crt file; add the CA of the "
                f"KMS instance behind {endpoint.host}"
            )
        if not region:
            raise FailedPrecondition(
                f"{spec.describe()}: the dedicated KMS gateway {endpoint.host} needs its "
                "instance CA, chosen by region: set the SecretProviderClass parameter region (or "
                "--region), or give the CA with --kms-ca-file"
            )
        bundled = bundled_ca(region)
        if bundled is None:
            raise FailedPrecondition(
                f"{spec.describe()}: no bundled KMS instance CA for region {region!r}; download "
                "the instance CA from the KMS console and set --kms-ca-file (Helm: kmsCaBundle)"
            )
        return (str(bundled),)

    def fetch(self, spec: ObjectSpec, ctx: FetchContext) -> SecretValue:
        from alibabacloud_kms20160120 import models

        ctx.deadline.check(spec.describe())
        key, client = self.client(spec, ctx)
        request = models.GetSecretValueRequest(
            secret_name=spec.object_name,
            version_id=spec.object_version or None,
            version_stage=spec.object_version_label or None,
        )
        runtime = self.runtime(ctx)
        response = self.call(
            ctx, key, spec.describe(),
            lambda: client.get_secret_value_with_options(request, runtime),
        )
        return self._value(spec, ctx, response)

    def _value(self, spec: ObjectSpec, ctx: FetchContext, response: Any) -> SecretValue:
        where = f"{spec.describe()} at endpoint {ctx.endpoint.describe()}"
        body = body_of(response, where)
        secret_data = field(body.secret_data, str, "SecretData", where)
        version = field(body.version_id, str, "VersionId", where)
        data_type = (optional_field(body.secret_data_type, str, "SecretDataType", where)
                     or "text").lower()
        if not version:
            raise UnexpectedAnswer(f"{where}: the answer's field VersionId is empty; check the "
                                   "endpoint (and any override or proxy), or report it")
        if data_type == "binary":
            try:
                data = base64.b64decode(secret_data, validate=True)
            except (binascii.Error, ValueError):
                raise UpstreamDataError(
                    f"{where}: the secret is stored as binary (SecretDataType binary) but its "
                    "SecretData is not valid base64; store a new version with base64 data "
                    "(or as text), then remount"
                ) from None
        else:
            data = secret_data.encode("utf-8")
        return SecretValue(data=data, version=version)
