"""One Mount, as data: `spec` parses the driver's attributes into frozen objects (pure and
total), `service` resolves identities and fetches every object through the plugins, `files` turns
secret values into the files and versions the driver writes, checked by the driver's own path
rules (`paths`). `arn` validates resource names shared by every backend.
"""
