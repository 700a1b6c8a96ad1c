"""``python -m npnet ...``: the same as the ``npnet`` console script."""
import sys

from .cli import main

sys.exit(main())
