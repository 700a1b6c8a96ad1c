"""``python -m npnet.studies NAME [--quick] [--seed N] [--out DIR]``: the same as ``npnet study NAME``."""
import sys

from .cli import main

sys.exit(main())
