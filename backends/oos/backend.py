"""OOS encrypted-parameter backend (objectType `oos`) through alibabacloud-oos20190601.

- `GetSecretParameter` with `WithDecryption=True`; `objectVersion` pins `ParameterVersion` (an
  integer); the version reported is the ParameterVersion OOS returns, so rotations are visible.
- Endpoint per object: `oosEndpoint` (an object field this backend declares), else
  `oos-vpc.<region>.aliyuncs.com`. An ARN
  (`acs:oos:<region>:<account>:secretparameter/<name>`) sets the region; the API takes the bare
  name, so the name part is sent.
- `fetch_batch`: unpinned parameters of one endpoint and identity are read with
  `GetSecretParameters`, up to 10 names per call (the API's limit). Names OOS reports in
  `InvalidParameters` fail the batch with NotFound naming them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from types import MappingProxyType
from typing import Any

from ack_secrets_provider.core.cloud.answers import body_of, field, optional_field
from ack_secrets_provider.core.cloud.endpoints import Endpoint, check_endpoint_host
from ack_secrets_provider.core.cloud.sdk_errors import ServiceHints
from ack_secrets_provider.core.errors import InvalidArgument, NotFound, UnexpectedAnswer
from ack_secrets_provider.core.mount.arn import Arn, object_arn
from ack_secrets_provider.core.mount.spec import ObjectSpec
from ack_secrets_provider.core.plugins.backend import FetchContext, RateLimit, SecretValue
from ack_secrets_provider.core.plugins.toolkit import SdkBackend, endpoint_example

#: GetSecretParameters accepts at most 10 names per call (API reference, `Names`)
MAX_NAMES_PER_CALL = 10
ENDPOINT_FIELD = "oosEndpoint"

HINTS = ServiceHints(
    service="OOS",
    object_kind="OOS secret parameter",
    read_action="oos:GetSecretParameter",
    extra_actions=("kms:Decrypt",),
    not_found_advice=(
        "check objectName, objectVersion (a ParameterVersion number) and that the parameter "
        "lives in the region of this endpoint"
    ),
    permission_codes=("Forbidden.Decrypt",),
)
BATCH_HINTS = ServiceHints(
    service="OOS",
    object_kind="OOS secret parameters",
    read_action="oos:GetSecretParameters",
    extra_actions=("kms:Decrypt",),
    not_found_advice=HINTS.not_found_advice,
    permission_codes=HINTS.permission_codes,
)


def _parameter_arn(spec: ObjectSpec) -> Arn | None:
    return object_arn(
        spec, service="oos", resource_type="secretparameter", kind="an OOS secret parameter",
        example="acs:oos:cn-hangzhou:123456789012:secretparameter/my-param",
    )


def parameter_name(spec: ObjectSpec) -> str:
    """The name sent to OOS: the objectName, or the name part of an ARN."""
    arn = _parameter_arn(spec)
    return arn.resource if arn else spec.object_name


class OosBackend(SdkBackend):
    """Reads OOS encrypted parameters (one upstream attempt per `fetch` / `fetch_batch`)."""

    object_type = "oos"
    service = "oos"
    api = "GetSecretParameter"
    batch_api = "GetSecretParameters"
    max_batch = MAX_NAMES_PER_CALL
    object_fields = MappingProxyType({ENDPOINT_FIELD: "OOS endpoint host for this object"})
    rate_limit = RateLimit(
        "--max-concurrent-oos-secret-pulls", what="OOS calls per second", default=10.0,
        help="OOS calls per second from this node (a rate, as in the existing provider; "
             "0 = unlimited)",
    )
    hints = HINTS
    region_in_host = re.compile(r"^oos(?:-vpc)?\.([a-z0-9-]+)\.aliyuncs\.com$")

    def new_client(self, config: Any) -> Any:
        from alibabacloud_oos20190601.client import Client

        return Client(config)

    # -- validation and endpoints (pure) ------------------------------------------------------

    def validate(self, spec: ObjectSpec) -> None:
        arn = _parameter_arn(spec)
        if spec.object_version_label:
            raise InvalidArgument(
                f"{spec.describe()}: field objectVersionLabel is a KMS version stage; OOS "
                "parameters have numbered versions only: remove it, or pin a version with "
                "objectVersion: \"3\""
            )
        if spec.object_version is not None:
            text = spec.object_version.strip()
            # ASCII only: str.isdigit() accepts '²', which int() refuses
            if not (text.isascii() and text.isdigit()) or int(text) < 1:
                raise InvalidArgument(
                    f"{spec.describe()}: field objectVersion {spec.object_version!r} must be an "
                    "OOS ParameterVersion, a whole number such as \"3\""
                )
        explicit = spec.fields.get(ENDPOINT_FIELD)
        if explicit:
            check_endpoint_host(
                explicit, where=spec.describe(), field_name=ENDPOINT_FIELD,
                example=endpoint_example(explicit, region=arn.region if arn else None,
                                         default="oos-vpc.cn-hangzhou.aliyuncs.com"),
            )

    def endpoint(self, spec: ObjectSpec, region: str | None) -> Endpoint:
        arn = _parameter_arn(spec)
        return self.regional_endpoint(
            spec, explicit=spec.fields.get(ENDPOINT_FIELD), field_name=ENDPOINT_FIELD,
            region=arn.region if arn else region, default_host="oos-vpc.{region}.aliyuncs.com",
        )

    # -- fetching -----------------------------------------------------------------------------

    def _region(self, specs: Sequence[ObjectSpec], ctx: FetchContext) -> str | None:
        """The RegionId sent with the request: ARN region, the endpoint's, or the mount's."""
        arns = (_parameter_arn(spec) for spec in specs)
        return self.region(ctx, next((arn.region for arn in arns if arn), None))

    def fetch(self, spec: ObjectSpec, ctx: FetchContext) -> SecretValue:
        from alibabacloud_oos20190601 import models

        ctx.deadline.check(spec.describe())
        key, client = self.client(spec, ctx)
        version = int(spec.object_version) if spec.object_version else None
        request = models.GetSecretParameterRequest(
            name=parameter_name(spec), parameter_version=version, with_decryption=True,
            region_id=self._region([spec], ctx),
        )
        runtime = self.runtime(ctx)
        response = self.call(
            ctx, key, spec.describe(),
            lambda: client.get_secret_parameter_with_options(request, runtime),
        )
        where = f"{spec.describe()} at endpoint {ctx.endpoint.describe()}"
        return self._value(spec, ctx, body_of(response, where).parameter)

    def fetch_batch(
        self, specs: Sequence[ObjectSpec], ctx: FetchContext
    ) -> Sequence[SecretValue]:
        """One GetSecretParameters call for 2-10 unpinned objects (the core's batch contract)."""
        from alibabacloud_oos20190601 import models

        what = self._describe_batch(specs)
        ctx.deadline.check(what)
        key, client = self.client(specs[0], ctx)
        names = list(dict.fromkeys(parameter_name(spec) for spec in specs))
        request = models.GetSecretParametersRequest(
            names=json.dumps(names), with_decryption=True, region_id=self._region(specs, ctx),
        )
        runtime = self.runtime(ctx)
        response = self.call(
            ctx, key, what,
            lambda: client.get_secret_parameters_with_options(request, runtime),
            hints=BATCH_HINTS,
        )
        where = f"{what} at endpoint {ctx.endpoint.describe()}"
        body = body_of(response, where)
        found = {
            field(p.name, str, "Parameters[].Name", where): p
            for p in optional_field(body.parameters, list, "Parameters", where) or []
        }
        missing = [name for name in names if name not in found]
        if missing:
            invalid = [field(n, str, "InvalidParameters[]", where) for n in
                       optional_field(body.invalid_parameters, list, "InvalidParameters",
                                      where) or []]
            raise NotFound(
                f"{what} at endpoint {ctx.endpoint.describe()}: OOS secret parameter(s) "
                f"{', '.join(repr(n) for n in (invalid or missing))} not found; "
                f"{HINTS.not_found_advice}"
            )
        return [self._value(spec, ctx, found[parameter_name(spec)]) for spec in specs]

    @staticmethod
    def _describe_batch(specs: Sequence[ObjectSpec]) -> str:
        names = ", ".join(f"#{s.index + 1} {s.object_name!r}" for s in specs)
        return f"objects {names} (oos)"

    def _value(self, spec: ObjectSpec, ctx: FetchContext, parameter: Any) -> SecretValue:
        where = f"{spec.describe()} at endpoint {ctx.endpoint.describe()}"
        if parameter is None:
            raise UnexpectedAnswer(
                f"{where}: OOS returned an answer without Parameter; check that the parameter is "
                "an encrypted (secret) parameter, or report it"
            )
        value = field(parameter.value, str, "Parameter.Value", where)
        version = field(parameter.parameter_version, int, "Parameter.ParameterVersion", where)
        return SecretValue(data=value.encode("utf-8"), version=str(version))
