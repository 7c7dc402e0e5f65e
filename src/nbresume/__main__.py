"""``python -m nbresume``: the same as the ``nbresume`` command."""

import sys

from .cli import main

sys.exit(main())
