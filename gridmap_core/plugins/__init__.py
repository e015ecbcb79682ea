"""Plugin machinery: the hook specifications, the manager and its typed getters, what
each kind of plugin contributes, and the choice of a backend among them.

Nothing is imported here, so that a module needing only the plugin types (the runner on
a node) does not pay for pluggy.
"""
