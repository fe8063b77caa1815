"""The driver's `v1alpha1.CSIDriverProvider` protocol: service.proto and its generated stubs.

Regenerate with `python -m ack_secrets_provider.core.proto.generate` after editing the .proto;
tests/test_proto_stubs.py fails when the checked-in stubs are stale.
"""
