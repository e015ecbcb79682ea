"""Notifiers: plugins told of failed jobs and finished maps (mail, log lines, …).

A notifier is an object with any of the lifecycle hook methods of
:mod:`gridmap_core.plugins.hookspecs` (``gridmap_job_failed``, ``gridmap_map_finished``, …) and
optionally ``close(timeout)``. The executor makes the ones named by the NOTIFIERS
setting for each map, and a notifier that fails never fails the map.
"""
