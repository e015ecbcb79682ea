"""gridmap's tests, one folder per part of the code; helpers in support/."""

from pathlib import Path

#: The repository's root folder.
PROJECT_ROOT = Path(__file__).resolve().parent.parent
