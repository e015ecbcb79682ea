"""What crosses the network between a runner and the monitor: the authenticated
message format, and the payloads each kind of message carries.
"""
