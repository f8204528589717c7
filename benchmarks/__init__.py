"""Performance benchmarks of the hypernets library: `python -m benchmarks.run`.

Speed claims live here (a printed table and a JSON file of every figure), never in
timed unit tests. See benchmarks/README.md.
"""
