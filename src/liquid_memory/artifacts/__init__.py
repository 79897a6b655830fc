"""Encrypted AOTInductor artifacts: the licensed ``aoti`` backend of ``liquid_scan`` (inference only).

``aoti_liquid_scan`` has the ``liquid_scan`` contract (docs/architecture.md §3); ``available`` says whether an
artifact could serve this machine at all (it does not check the licence — calling does).
"""

from liquid_memory.artifacts.scan import aoti_liquid_scan, available

__all__ = ["aoti_liquid_scan", "available"]
