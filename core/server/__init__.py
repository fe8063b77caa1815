"""The gRPC face of the provider: the servicer on the unix socket, the wiring that builds and
closes everything in order (`app`), and a driver-side client that speaks to a provider exactly as
the Secrets Store CSI driver does (`driver_client`, used by the CLI, the demo, the benchmark and
tests). The servicer is thin: decode, call `mount.service`, encode, map errors once.
"""
