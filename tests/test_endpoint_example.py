"""The toolkit's `endpoint_example`: the host an endpoint-field error suggests is the user's own
text made bare, whichever backend asks (KMS and OOS both use it; tests of their messages:
test_kms_backend.py, test_oos_backend.py)."""

from __future__ import annotations

import pytest

from ack_secrets_provider.core.plugins.toolkit import endpoint_example

INSTANCE = {"kms-instance-id": "kst-hzz0example"}


@pytest.mark.parametrize(("written", "region", "expected"), [
    ("kms-vpc.{region}.aliyuncs.com", None, "kms-vpc.cn-hangzhou.aliyuncs.com"),
    ("kms-vpc.{region}.aliyuncs.com", "cn-beijing", "kms-vpc.cn-beijing.aliyuncs.com"),
    ("oos.<Region-Id>.aliyuncs.com", "eu-central-1", "oos.eu-central-1.aliyuncs.com"),
    ("{kms-instance-id}.cryptoservice.kms.aliyuncs.com", None,
     "kst-hzz0example.cryptoservice.kms.aliyuncs.com"),
    ("{something-else}.example.com", None, "value.example.com"),
    ("https://oos.cn-shanghai.aliyuncs.com/path?x=1", None, "oos.cn-shanghai.aliyuncs.com"),
    (" https:// ", None, "the-default.example.com"),  # nothing left: the backend's default
])
def test_the_example_is_the_users_text_made_bare(
        written: str, region: str | None, expected: str) -> None:
    assert endpoint_example(written, region=region, default="the-default.example.com",
                            values=INSTANCE) == expected
