"""Imported by Python at start-up in the processes a test starts with
`loopback_guard.child_environment`: they may reach loopback only (tests/loopback_guard.py).

Loaded by its path, so the child's sys.path gains this folder only, not the test modules."""

import importlib.util
import os

_spec = importlib.util.spec_from_file_location(
    "loopback_guard", os.path.join(os.path.dirname(os.path.dirname(__file__)),
                                   "loopback_guard.py"))
assert _spec is not None and _spec.loader is not None
_guard = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_guard)
_guard.install_in_child()
