"""``python -m flows.cli ...``: the same as ``remixtv ...``."""

import sys

from flows.cli import main

sys.exit(main())
