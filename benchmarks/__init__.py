"""Research that measures the product, run from a checkout (not installed): ``python -m benchmarks <name> ...``.

One module per benchmark, each with ``add_arguments(parser)`` and ``run(args) -> exit code`` (it measures, prints its
table and writes its JSON, and a PNG where there is something to plot); ``benchmarks/__main__.py`` dispatches to them.
Committed results live in ``benchmarks/results/<topic>/``.
"""
