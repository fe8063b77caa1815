"""The user-facing sub-commands that are more than wiring: lint, mount, version and plugins.

Each module exposes `add_arguments(parser)` and `run(args) -> exit status`; core/cli.py registers
them and imports a module only when its command runs (start-up of `serve` stays lean).
"""
