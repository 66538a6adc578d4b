"""``python -m sqsx``: the ``sqsx`` command."""

import sys

from sqsx.cli import main

if __name__ == "__main__":
    sys.exit(main())
