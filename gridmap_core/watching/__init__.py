"""Watching a map while it runs: the progress display and the live status page."""
