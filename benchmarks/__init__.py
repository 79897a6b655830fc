"""Research that measures the product, run from a checkout (not installed): ``python -m benchmarks <name> ...``.

Every benchmark is a module with ``run()``, a table printer, and JSON + PNG output; results are committed under
``benchmarks/results/<topic>/``.
"""
