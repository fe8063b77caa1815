"""The plugin contracts and their hosts. `backend` is the contract a secret-store backend
implements (found by stevedore under the objectType name), `hookspecs` and `identity` the
credential-plugin contract (a pluggy firstresult chain; what a plugin receives and returns, and
the identity cache), `credentials` hosts it, `host` loads the backends; both report load failures
by plugin name. Built-ins use exactly these contracts; the core names none of them.
"""
