"""One map, from submit to results: the monitor that serves and watches runners, the
liveness rules, the sinks that gather results, the notifiers' dispatcher and the
session directories.
"""
