"""The plugin contracts and their hosts. `backend` is the contract a secret-store backend
implements (found by stevedore under the objectType name), `credentials` and `hookspecs` the
credential-plugin contract (a pluggy firstresult chain), `host` loads both at start-up and reports
failures by plugin name. Built-ins use exactly these contracts; the core names none of them.
"""
