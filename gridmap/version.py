"""The original GridMap's ``gridmap.version`` module: the version, as text and as a
tuple of numbers."""

from gridmap_core import __version__

VERSION: tuple[int, ...] = tuple(int(part) for part in __version__.split("."))

__all__ = ["VERSION", "__version__"]
