"""The `oosparam` backend: OOS `GetParameter` through alibabacloud-oos20190601.

- `objectName`: the parameter name (`my-app/feature-flags` or `/my-app/flags`), or its ARN
  `acs:oos:<region>:<account>:parameter/<name>` (the ARN's region picks the endpoint).
- `objectVersion`: pins `ParameterVersion` (1-100, as the API accepts); the version reported
  to the driver is the ParameterVersion OOS answers, so a new value is a new version.
- `oosEndpoint`: the endpoint host for this object; default `oos-vpc.<region>.aliyuncs.com`.
- `StringList` parameters are written as OOS returns them (comma-separated).

It reuses what the built-in backends use: `clients` (one SDK client per endpoint and identity),
`sdk_errors.map_sdk_error` (SDK failures → provider errors that name the RAM action), and the
endpoint-override service `oos`, so `--endpoint-override oos=...` and the OOS rate limit cover it.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from ack_secrets_provider.core.cloud.clients import ClientCache, ClientKey, openapi_config
from ack_secrets_provider.core.cloud.endpoints import Endpoint, check_endpoint_host
from ack_secrets_provider.core.cloud.sdk_errors import ServiceHints, map_sdk_error
from ack_secrets_provider.core.errors import InternalError, InvalidArgument, Unauthenticated
from ack_secrets_provider.core.mount.arn import Arn, looks_like_arn, object_arn
from ack_secrets_provider.core.mount.spec import ObjectSpec
from ack_secrets_provider.core.plugins.backend import Backend, FetchContext, SecretValue
from ack_secrets_provider.core.settings import ProviderSettings

#: GetParameter's ParameterVersion range (API reference: "Valid values: 1 to 100")
MAX_VERSION = 100
#: GetParameter's Name limit (API reference: "up to 200 characters")
MAX_NAME = 200
_REGION_IN_HOST = re.compile(r"^oos(?:-vpc)?\.([a-z0-9-]+)\.aliyuncs\.com$")

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


class OosParameterBackend(Backend):
    """Reads OOS common parameters, one `GetParameter` call per object and attempt."""

    object_type: ClassVar[str] = "oosparam"
    service: ClassVar[str] = "oos"

    def __init__(self, settings: ProviderSettings) -> None:
        super().__init__(settings)
        self._clients: ClientCache[ClientKey, Any] = ClientCache()

    def validate(self, spec: ObjectSpec) -> None:
        parameter_arn(spec)
        if len(parameter_name(spec)) > MAX_NAME:
            raise InvalidArgument(f"{spec.describe()}: field objectName is longer than "
                                  f"{MAX_NAME} characters, the OOS limit for parameter names")
        if spec.kms_endpoint:
            raise InvalidArgument(f"{spec.describe()}: field kmsEndpoint applies to kms objects "
                                  "only; for an OOS parameter use oosEndpoint")
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
        if spec.oos_endpoint:
            check_endpoint_host(spec.oos_endpoint, where=spec.describe(),
                                field_name="oosEndpoint", example="oos.cn-hangzhou.aliyuncs.com")

    def endpoint(self, spec: ObjectSpec, region: str | None) -> Endpoint:
        arn = parameter_arn(spec)
        return self.regional_endpoint(
            spec, explicit=spec.oos_endpoint, field_name="oosEndpoint",
            region=arn.region if arn else region, default_host="oos-vpc.{region}.aliyuncs.com",
        )

    def _client(self, ctx: FetchContext) -> tuple[ClientKey, Any]:
        endpoint, identity = ctx.endpoint, ctx.identity
        key = ClientKey(service=self.service, address=endpoint.address,
                        protocol=endpoint.protocol, identity=identity.key)

        def create() -> Any:
            from alibabacloud_oos20190601.client import Client

            return Client(openapi_config(endpoint, identity))

        return key, self._clients.get(key, create, owner=identity.credential)

    def _region(self, spec: ObjectSpec, ctx: FetchContext) -> str | None:
        arn = parameter_arn(spec)
        if arn:
            return arn.region
        match = _REGION_IN_HOST.match(ctx.endpoint.host.lower())
        return match.group(1) if match else (ctx.region or self.settings.region)

    def fetch(self, spec: ObjectSpec, ctx: FetchContext) -> SecretValue:
        from alibabacloud_oos20190601 import models
        from darabonba.runtime import RuntimeOptions

        ctx.deadline.check(spec.describe())
        key, client = self._client(ctx)
        request = models.GetParameterRequest(
            name=parameter_name(spec),
            parameter_version=int(spec.object_version) if spec.object_version else None,
            region_id=self._region(spec, ctx),
        )
        connect_ms, read_ms = ctx.timeouts_ms()
        runtime = RuntimeOptions(autoretry=False, connect_timeout=connect_ms,
                                 read_timeout=read_ms)
        try:
            response = client.get_parameter_with_options(request, runtime)
        except Exception as exc:  # every SDK failure goes through the shared mapper
            error = map_sdk_error(exc, what=spec.describe(), endpoint=ctx.endpoint, hints=HINTS)
            if isinstance(error, Unauthenticated):
                self._clients.invalidate(key)
            raise error from None
        parameter = response.body.parameter if response.body is not None else None
        if parameter is None or parameter.value is None or parameter.parameter_version is None:
            raise InternalError(
                f"{spec.describe()} at endpoint {ctx.endpoint.describe()}: OOS answered without "
                "Value or ParameterVersion; report this with the request id from the logs"
            )
        return SecretValue(str(parameter.value).encode("utf-8"), str(parameter.parameter_version))

    def close(self) -> None:
        self._clients.clear()
