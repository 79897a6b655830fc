"""Benchmarks: the layer table (``layer``), the mixer-only kernels (``mixer``), and their reports."""
