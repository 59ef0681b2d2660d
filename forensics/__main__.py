"""``python -m forensics ...``: the same as the ``forensics`` command (and what torchrun runs)."""

import sys

from forensics.cli import main

if __name__ == "__main__":
    sys.exit(main())
