"""Built-in secret backends, each loaded by the core through the `ack_secrets_provider.backends`
entry-point group (the entry-point name is the SecretProviderClass `objectType`)."""
