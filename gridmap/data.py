"""The original GridMap's ``gridmap.data`` module: compressed pickles."""

from gridmap_core.serialization import zdumps, zloads

__all__ = ["zdumps", "zloads"]
