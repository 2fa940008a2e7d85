"""`python -m promptgate.testing`: see promptgate.testing.cli."""

import sys

from .cli import main

sys.exit(main())
