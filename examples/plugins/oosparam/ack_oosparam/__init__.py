"""OOS common (plain, non-secret) parameters as files: the `oosparam` objectType.

A plugin for csi-secrets-store-provider-alibabacloud. Configuration that is not secret (feature
flags, endpoints, image tags) often lives in OOS Parameter Store next to the encrypted parameters
that the built-in `oos` type reads; this backend mounts it the same way, with the same rotation.
"""

__version__ = "0.1.0"
