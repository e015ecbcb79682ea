"""``python -m gridmap_core.cli``: the ``gridmap`` command."""

import sys

from gridmap_core.cli import main

sys.exit(main())
