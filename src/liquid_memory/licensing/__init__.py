"""Licence verification (runtime side). The vendor side lives in ``liquid_memory_vendor``.

Public API: :func:`require_feature` (the gate every compiled backend calls), :func:`current_licence`,
:func:`verify_licence_text`, :func:`reset_cache`.
"""

from liquid_memory.licensing.gate import (
    current_licence,
    read_licence_text,
    require_feature,
    reset_cache,
    verify_licence_text,
)
from liquid_memory.licensing.licence import Licence, parse_licence
from liquid_memory.licensing.trust import build_kind, is_release_build, trusted_keys

__all__ = [
    "Licence",
    "build_kind",
    "current_licence",
    "is_release_build",
    "parse_licence",
    "read_licence_text",
    "require_feature",
    "reset_cache",
    "trusted_keys",
    "verify_licence_text",
]
