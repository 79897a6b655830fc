"""One licence check per model forward for the compiled ops a forward asks for many times.

A decode token of a linearized SmolLM2 with int8 weights asks for a compiled op ≈ 240 times (211 int8 matmuls,
30 attention steps), and each ask verified the licence (≈ 4 µs: the environment, a ``stat`` of the key file,
the dates) and resolved the backend (≈ 2.5 µs more): ≈ 1.5 ms of a ≈ 25 ms token. ``hold_per_forward(model)``
gives ``model`` a forward pre-hook that opens a hold for this thread and a forward hook that closes it (also
when the forward raises). Inside a hold, ``ops/dispatch.py``'s getters check the licence the first time each op
is asked for and hand the same op back after that — until the forward ends, or for at most
``HOLD_SECONDS`` (a hold left open by an interrupt that bypassed the closing hook is re-checked then, and the
next forward of the model opens a fresh hold). Outside a hold — another thread, a layer called on its own —
every ask checks the licence as before. So a removed, changed or expired key takes effect at the next model
forward (a decode token), not in the middle of one. A release install's kernel wrappers (``ops/cpp.py``), which
check the licence inside every call besides, skip that second check while this thread's hold vouches for a check
made in the same forward (``vouched``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

HOLD_SECONDS = 1.0  # a held op is re-checked after this long even inside one (long) forward
_HOOKED = "_liquid_licence_hold"

_local = threading.local()


def hold_per_forward(model: Any) -> Any:
    """Check the licence once per forward of ``model`` (an ``nn.Module``) for each compiled op it asks for;
    idempotent. Returns ``model``."""
    if not getattr(model, _HOOKED, False):
        model.register_forward_pre_hook(_open)
        model.register_forward_hook(_close, always_call=True)
        object.__setattr__(model, _HOOKED, True)
    return model


def _open(module: Any, args: Any) -> None:
    _local.ops = {}  # every forward starts empty: its first ask of each op checks the licence


def _close(module: Any, args: Any, output: Any) -> None:
    _local.ops = None


def held(key: tuple[Any, ...]) -> Callable[..., Any] | None | bool:
    """The op held for ``key`` in this thread's open hold, or ``False`` (no hold, not held yet, or too old)."""
    ops = getattr(_local, "ops", None)
    if not ops:
        return False
    entry = ops.get(key)
    if entry is None or time.monotonic() > entry[1]:
        return False
    return entry[0]


def hold(key: tuple[Any, ...], op: Callable[..., Any] | None) -> None:
    """Keep ``op`` (already licence-checked, or ``None``: no compiled op applies) for ``key`` while this thread's
    hold is open; nothing happens outside a hold."""
    ops = getattr(_local, "ops", None)
    if ops is not None:
        ops[key] = (op, time.monotonic() + HOLD_SECONDS)


def vouched() -> bool:
    """Whether this thread's open hold holds a compiled op the licence was checked for in this forward, still
    within ``HOLD_SECONDS``: a kernel wrapper called now needs no second check."""
    ops = getattr(_local, "ops", None)
    if not ops:
        return False
    now = time.monotonic()
    return any(op is not None and now <= expiry for op, expiry in ops.values())
