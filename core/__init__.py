"""Core of the Alibaba Cloud provider for the Secrets Store CSI driver.

The core owns everything shared between backends: parsing, files, concurrency, deadlines,
retries, caching, the plugin hosts and the gRPC server. It never imports a backend or a
credential plugin; it finds them through entry points, exactly as it finds third-party ones.
"""

from importlib.metadata import PackageNotFoundError, version

DISTRIBUTION = "csi-secrets-store-provider-alibabacloud"
RUNTIME_NAME = "secrets-store-csi-driver-provider-alibabacloud"

try:
    __version__ = version(DISTRIBUTION)
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"
