"""`python -m multirec ...`: the same as the `multirec` command (see `multirec.cli`)."""

from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
