"""`python -m ack_secrets_provider.core.emulator`: the same flags as the CLI subcommand."""

import sys

from ack_secrets_provider.core.emulator.cli import main

sys.exit(main())
