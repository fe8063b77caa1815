"""What `serve` finds installed in the test environment (the built-in backends, the test backend,
the example plugin): the service names an endpoint override may use."""

from __future__ import annotations

from ack_secrets_provider.core.plugins.host import backend_classes, endpoint_services

#: the installed backends' services and the credential plugins'
SERVICES = endpoint_services(backend_classes().values())
