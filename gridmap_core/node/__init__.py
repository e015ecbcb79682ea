"""The node side: what runs on a compute node (the runner, the job's own process, and
the measure of what it uses). Imports no backend, the map or the face.
"""
