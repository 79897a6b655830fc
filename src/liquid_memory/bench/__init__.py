"""The layer benchmark users run on their own hardware: ``liquid-memory bench`` and ``LiquidMemory.benchmark``.

``run`` prints the layer table (``layer``: LiquidMemory vs its projection floor, ``nn.MultiheadAttention`` and an
SDPA layer) and writes JSON + PNG (``report``); ``mixer`` times the ``liquid_scan`` kernels alone; ``extras``
adds bandwidth, decode, ``decay_rank`` and ``torch.compile`` measurements.
"""
