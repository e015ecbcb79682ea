"""The fixtures of the tests that run a runner against a stand-in monitor: the map's key
and its key file, defined with the stand-in in test_runner.py and so given to every test
of this folder without each importing them."""

from tests.node.test_runner import key, key_file

__all__ = ["key", "key_file"]
