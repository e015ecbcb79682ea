"""gridmap's local backend: jobs run in worker processes on this machine."""

__all__ = ["__version__"]
__version__ = "0.1.0"
