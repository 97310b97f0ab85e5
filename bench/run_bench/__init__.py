"""The pieces of ``bench/runs.py``: the bare-Temporal baseline, the harness that runs both sides,
one module per measurement phase, and the report's targets."""
