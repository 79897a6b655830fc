"""Research benchmarks that measure the product, run from a checkout: ``python -m benchmarks <name> ...``."""
