"""The public face: grid_map, process_jobs and GridMapExecutor, what a user calls."""
