"""``python -m forensics ...``: the same as the ``forensics`` command (and what torchrun runs)."""

import logging
import os
import sys

from forensics.cli import main
from forensics.distributed import dist_env

if __name__ == "__main__":
    status = main()
    if dist_env().distributed:
        # torch 2.14 with gloo: a rank now and then aborts in interpreter teardown ("terminate
        # called without an active exception") after its work is done and the process group is
        # destroyed, turning a finished run into a failed one. A rank has written and closed
        # everything by now, so it skips the teardown.
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    sys.exit(status)
