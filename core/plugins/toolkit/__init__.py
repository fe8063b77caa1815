"""The plugin author's toolkit: the helpers the built-in plugins use, public and documented.

For backends:
- `SdkBackend` (sdk_backend.py): the base class of a backend on an Alibaba Cloud SDK client
  (one client per endpoint, trust and identity; private-CA trust; every SDK failure mapped to a
  provider error and the client dropped when the credential is rejected; region from the host).
- `endpoint_example` (endpoint_example.py): the corrected host an endpoint-field error suggests,
  built from what the user wrote (placeholders filled, scheme and path dropped).

For credential plugins:
- `IdentityCache`, `secret_digest`, `refreshing_identity` (identities.py): identities cached per
  key and built once, secrets kept out of keys;
- `RefreshingProvider`, `Issued`, `Fetch` (refresh.py): a credentials provider that refreshes a
  temporary credential once per lifetime, around the plugin's own fetch.

Stable in 0.x like the rest of the plugin API (docs/plugin-authors.md). The built-in KMS and OOS
backends, the built-in credential plugins and the example plugin in examples/plugins/oosparam
use exactly these.
"""

from ack_secrets_provider.core.plugins.toolkit.endpoint_example import endpoint_example
from ack_secrets_provider.core.plugins.toolkit.identities import (
    IdentityCache,
    refreshing_identity,
    secret_digest,
)
from ack_secrets_provider.core.plugins.toolkit.refresh import Fetch, Issued, RefreshingProvider
from ack_secrets_provider.core.plugins.toolkit.sdk_backend import SdkBackend

__all__ = [
    "Fetch",
    "IdentityCache",
    "Issued",
    "RefreshingProvider",
    "SdkBackend",
    "endpoint_example",
    "refreshing_identity",
    "secret_digest",
]
