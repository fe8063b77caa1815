"""The `oosparam` backend: OOS `GetParameter` through alibabacloud-oos20190601.

- `objectName`: the parameter name (`my-app/feature-flags` or `/my-app/flags`), or its ARN
  `acs:oos:<region>:<account>:parameter/<name>` (the ARN's region picks the endpoint).
- `objectVersion`: pins `ParameterVersion` (1-100, as the API accepts); the version reported
  to the driver is the ParameterVersion OOS answers, so a new value is a new version.
- `oosEndpoint`: the endpoint host for this object; default `oos-vpc.<region>.aliyuncs.com`.
- `listFormat` (a field of this plugin's own): how a `StringList` parameter is written: `comma`
  (default, as OOS returns it), `lines` (one item per line) or `json` (a JSON array).

It shows the powers a plugin has, the same as the built-in backends': object fields of its own
(`object_fields`), a rate-limit flag of its own (`--max-oosparam-calls-per-second`), and the
public toolkit the built-ins use (`SdkBackend`: one SDK client per endpoint and identity, every
SDK failure mapped to a provider error naming the RAM action, the region read from the host).
It uses the endpoint-override service `oos`, so `--endpoint-override oos=...` covers it.
"""

from __future__ import annotations

import json
import re
from types import MappingProxyType
from typing import Any

from ack_secrets_provider.core.cloud.answers import body_of, field, optional_field
from ack_secrets_provider.core.cloud.endpoints import Endpoint, check_endpoint_host
from ack_secrets_provider.core.cloud.sdk_errors import ServiceHints
from ack_secrets_provider.core.errors import InvalidArgument, UnexpectedAnswer
from ack_secrets_provider.core.mount.arn import Arn, looks_like_arn, object_arn
from ack_secrets_provider.core.mount.spec import ObjectSpec
from ack_secrets_provider.core.plugins.backend import FetchContext, RateLimit, SecretValue
from ack_secrets_provider.core.plugins.toolkit import SdkBackend

#: GetParameter's ParameterVersion range (API reference: "Valid values: 1 to 100")
MAX_VERSION = 100
#: GetParameter's Name limit (API reference: "up to 200 characters")
MAX_NAME = 200
ENDPOINT_FIELD = "oosEndpoint"
LIST_FORMAT_FIELD = "listFormat"
LIST_FORMATS = ("comma", "lines", "json")

HINTS = ServiceHints(
    service="OOS",
    object_kind="OOS parameter",
    read_action="oos:GetParameter",
    not_found_advice=(
        "check objectName, objectVersion (a ParameterVersion number) and that the parameter "
        "lives in the region of this endpoint; for an encrypted parameter use objectType: oos"
    ),
)


def parameter_arn(spec: ObjectSpec) -> Arn | None:
    """The ARN in objectName, checked to be an OOS common parameter's; None for a plain name."""
    if ":secretparameter/" in spec.object_name and looks_like_arn(spec.object_name):
        raise InvalidArgument(
            f"{spec.describe()}: field objectName {spec.object_name!r} is an encrypted "
            "parameter; set objectType: oos for it (oosparam reads common parameters)"
        )
    return object_arn(spec, service="oos", resource_type="parameter",
                      kind="an OOS parameter",
                      example="acs:oos:cn-hangzhou:123456789012:parameter/my-param")


def parameter_name(spec: ObjectSpec) -> str:
    arn = parameter_arn(spec)
    return arn.resource if arn else spec.object_name


def format_list(value: str, list_format: str) -> str:
    """A StringList value (comma-separated, as OOS returns it) in the object's listFormat."""
    if list_format == "lines":
        return "".join(f"{item}\n" for item in value.split(","))
    if list_format == "json":
        return json.dumps(value.split(","))
    return value


class OosParameterBackend(SdkBackend):
    """Reads OOS common parameters, one `GetParameter` call per object and attempt."""

    object_type = "oosparam"
    service = "oos"
    api = "GetParameter"
    object_fields = MappingProxyType({
        ENDPOINT_FIELD: "OOS endpoint host for this object",
        LIST_FORMAT_FIELD: "how a StringList parameter is written: comma (default), lines or json",
    })
    rate_limit = RateLimit(
        "--max-oosparam-calls-per-second", what="oosparam calls per second", default=10.0,
        help="OOS GetParameter calls per second from this node for oosparam objects "
             "(0 = unlimited)",
    )
    hints = HINTS
    region_in_host = re.compile(r"^oos(?:-vpc)?\.([a-z0-9-]+)\.aliyuncs\.com$")

    def new_client(self, config: Any) -> Any:
        from alibabacloud_oos20190601.client import Client

        return Client(config)

    def validate(self, spec: ObjectSpec) -> None:
        parameter_arn(spec)
        if len(parameter_name(spec)) > MAX_NAME:
            raise InvalidArgument(f"{spec.describe()}: field objectName is longer than "
                                  f"{MAX_NAME} characters, the OOS limit for parameter names")
        if spec.object_version_label:
            raise InvalidArgument(
                f"{spec.describe()}: field objectVersionLabel is a KMS version stage; OOS "
                "parameters have numbered versions: remove it, or pin one with objectVersion: "
                "\"3\""
            )
        if spec.object_version is not None:
            text = spec.object_version.strip()
            if not text.isdigit() or not 1 <= int(text) <= MAX_VERSION:
                raise InvalidArgument(
                    f"{spec.describe()}: field objectVersion {spec.object_version!r} must be an "
                    f"OOS ParameterVersion, a whole number from 1 to {MAX_VERSION} such as \"3\""
                )
        list_format = spec.fields.get(LIST_FORMAT_FIELD)
        if list_format is not None and list_format not in LIST_FORMATS:
            raise InvalidArgument(
                f"{spec.describe()}: field {LIST_FORMAT_FIELD} {list_format!r} must be one of "
                f"{', '.join(LIST_FORMATS)}, for example '{LIST_FORMAT_FIELD}: lines'"
            )
        explicit = spec.fields.get(ENDPOINT_FIELD)
        if explicit:
            check_endpoint_host(explicit, where=spec.describe(), field_name=ENDPOINT_FIELD,
                                example="oos.cn-hangzhou.aliyuncs.com")

    def endpoint(self, spec: ObjectSpec, region: str | None) -> Endpoint:
        arn = parameter_arn(spec)
        return self.regional_endpoint(
            spec, explicit=spec.fields.get(ENDPOINT_FIELD), field_name=ENDPOINT_FIELD,
            region=arn.region if arn else region, default_host="oos-vpc.{region}.aliyuncs.com",
        )

    def fetch(self, spec: ObjectSpec, ctx: FetchContext) -> SecretValue:
        from alibabacloud_oos20190601 import models

        ctx.deadline.check(spec.describe())
        key, client = self.client(spec, ctx)
        arn = parameter_arn(spec)
        request = models.GetParameterRequest(
            name=parameter_name(spec),
            parameter_version=int(spec.object_version) if spec.object_version else None,
            region_id=self.region(ctx, arn.region if arn else None),
        )
        runtime = self.runtime(ctx)
        response = self.call(ctx, key, spec.describe(),
                             lambda: client.get_parameter_with_options(request, runtime))
        # The SDK model takes any JSON type: check each field used before using it.
        where = f"{spec.describe()} at endpoint {ctx.endpoint.describe()}"
        parameter = body_of(response, where).parameter
        if parameter is None:
            raise UnexpectedAnswer(f"{where}: OOS answered without Parameter; check the "
                                   "endpoint (and any override or proxy), or report it")
        value = field(parameter.value, str, "Parameter.Value", where)
        version = field(parameter.parameter_version, int, "Parameter.ParameterVersion", where)
        if optional_field(parameter.type, str, "Parameter.Type", where) == "StringList":
            value = format_list(value, spec.fields.get(LIST_FORMAT_FIELD) or "comma")
        return SecretValue(value.encode("utf-8"), str(version))
