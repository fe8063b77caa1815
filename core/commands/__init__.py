"""The user-facing sub-commands that are more than wiring: lint, mount, demo, version, plugins.

Each module exposes `add_arguments(parser)` and `run(args) -> exit status`; core/cli.py registers
them and imports a module only when its command runs (start-up of `serve` stays lean).
`atomic_writer` writes a mount's files the way the driver does, for `mount` and `demo`.
"""
