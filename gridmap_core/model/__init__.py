"""The model: a Job and its resources, settings, and how values become bytes.

Imports nothing of the map, the face or any backend: everything else builds on it.
"""
