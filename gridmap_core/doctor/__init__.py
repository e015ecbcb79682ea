"""``gridmap doctor``: the checks before a big map, and the round trip of one job."""
