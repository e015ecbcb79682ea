"""``python -m gridmap_core.cli``: the ``gridmap`` command."""

import sys

from gridmap_core.cli import main

# Only when run: a walk over the package's modules imports this one too.
if __name__ == "__main__":
    sys.exit(main())
