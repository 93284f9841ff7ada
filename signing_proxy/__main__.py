"""`python -m signing_proxy` is the `signing-proxy` command."""

import sys

from signing_proxy.cli import main

sys.exit(main())
