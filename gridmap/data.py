"""The original GridMap's ``gridmap.data`` module: compressed pickles."""

from gridmap_core.model.serialization import zdumps, zloads

__all__ = ["zdumps", "zloads"]
