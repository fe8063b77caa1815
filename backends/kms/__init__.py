"""KMS Secrets Manager backend (objectType `kms`)."""
