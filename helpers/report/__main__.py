"""``python -m helpers.report``: the same as ``python -m helpers report``."""

import sys

from helpers.report.make import main

if __name__ == "__main__":
    sys.exit(main())
