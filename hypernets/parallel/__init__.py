"""Several devices and processes: the mesh and shardings of one jitted program
(sharding.py), and joining a multi-process run (distributed.py)."""
