"""What the configs run: `registry.run(config, workdir)` dispatches on
`config.experiment`; kind_comparison.py, sweeps.py, the assumption checks, the
theorems' orders (theory.py) and the report that turns results into REPRODUCTION.md.
"""
