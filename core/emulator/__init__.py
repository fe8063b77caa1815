"""A loopback Alibaba Cloud emulator that verifies real request signatures.

The real SDKs (alibabacloud-kms20160120, alibabacloud-oos20190601, alibabacloud-credentials and
the STS SDK) run unmodified against it. See docs/emulator.md. Public API:

* `Emulator` (server.py): compose the parts, `start()` / `stop()`.
* `EmulatorPart`, `Call`, `Reply`, `ApiError`, `Principal`, `EmulatorContext` (api.py): the part
  interface for service emulators (KMS and OOS live in the backends, STS/metadata in auth).
* `CredentialStore`, `PolicyStore`, `TemporaryCredential` (credentials.py).
* `testing.running_emulator()` / `testing.EmulatorHandle` for tests, benchmarks and the demo.
* `cli.add_arguments()` / `cli.run()` for `ack-secrets-provider emulator`.
"""

from ack_secrets_provider.core.emulator.api import (
    ApiError,
    Call,
    EmulatorContext,
    EmulatorPart,
    Principal,
    Reply,
)
from ack_secrets_provider.core.emulator.credentials import (
    AccessKey,
    CredentialStore,
    PolicyStore,
    TemporaryCredential,
)
from ack_secrets_provider.core.emulator.server import Emulator, parse_listen

__all__ = [
    "AccessKey",
    "ApiError",
    "Call",
    "CredentialStore",
    "Emulator",
    "EmulatorContext",
    "EmulatorPart",
    "PolicyStore",
    "Principal",
    "Reply",
    "TemporaryCredential",
    "parse_listen",
]
