"""Imported by Python at start-up in the processes a test starts with
`loopback_guard.child_environment`: they may reach loopback only (tests/loopback_guard.py)."""

import loopback_guard

loopback_guard.install_in_child()
