"""The layer benchmark's committed results and the README table generated from them (the benchmark itself is
installed: ``liquid-memory bench``, ``liquid_memory.bench``)."""
