"""Token-by-token decode for ``LiquidMemory``: prefill a prompt, then O(1) steps on a kept state.

A mixin rather than a wrapper so ``module.prefill`` / ``module.step`` stay methods of the drop-in layer (the
public API), while ``liquid_memory.py`` keeps only construction and the parallel ``forward``. It relies on the
layer's projections and read-out (``_project``, ``_scan_read``, ``_beta``, ``_output``, ``_read``): one place per
op, so decode and the parallel forward cannot drift apart (``tests/core`` compare them).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor

from liquid_memory.nn.masks import padding_to_bool
from liquid_memory.nn.mha_inputs import to_batch_first
from liquid_memory.ops.delta import delta_step
from liquid_memory.ops.dispatch import liquid_step

ONE_THREAD_ROWS = 16  # step() with at most this many sequences runs on the calling thread alone


@contextmanager
def one_thread() -> Iterator[None]:
    """Run the block with one intra-op thread, then restore the setting.

    A decode step is a few GEMVs (the layer's weights read once: 10–20 MB for E = 1024). Split over threads, each
    op ends at an OpenMP barrier; with bf16 weights the parallel GEMV (oneDNN) then waited for a second core
    held by another process: 110 ms wall for a 3072×1024 GEMV that takes 0.7 ms on one thread (measured on a
    shared 2-core machine; fp32's MKL GEMV stays on one thread by itself). One thread is what the step needs."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class DecodeMixin:
    """``prefill`` / ``step`` / state access of ``LiquidMemory``: the state ``[N, H, d, d]`` fp32 in ``_state`` and,
    with ``short_conv=K``, the last ``K - 1`` projected q/k/v rows ``[N, K-1, 3E]`` in ``_conv_window``."""

    _state: Tensor | None
    _conv_window: Tensor | None

    def prefill(
        self,
        x: Tensor,
        key_padding_mask: Tensor | None = None,
        *,
        key: Tensor | None = None,
        value: Tensor | None = None,
    ) -> Tensor:
        """Causal self-attention over ``x``, continuing from the decode state and keeping the final state for
        :meth:`step`. ``key`` / ``value``: separate streams of ``x``'s length (e.g. each after its own short
        convolution, ``models.qkv_conv``); the decay follows ``key`` as in any call."""
        key = x if key is None else key
        value = x if value is None else value
        x_in, k_in, v_in, unbatched = to_batch_first(x, key, value, self._widths(), self.batch_first)
        if k_in.shape[1] != x_in.shape[1]:
            raise ValueError(f"prefill is causal: key needs x's length {x_in.shape[1]}, got {k_in.shape[1]}")
        padded = None if key_padding_mask is None else padding_to_bool(
            key_padding_mask.unsqueeze(0) if unbatched and key_padding_mask.dim() == 1 else key_padding_mask,
            x_in.shape[0], x_in.shape[1],
        )  # fmt: skip
        q, k, v, log_a, self._conv_window = self._project(x_in, k_in, v_in, padded, self._conv_window)
        o, self._state = self._scan_read(
            q, k, v, log_a, self._beta(k_in, padded), initial_state=self._state, output_final_state=True
        )
        out = self._output(o, x_in)
        if unbatched:
            return out.squeeze(0)
        return out if self.batch_first else out.transpose(0, 1)

    def step(self, x_t: Tensor) -> Tensor:
        """Advance the state by one token; O(1) in context length. ``x_t``: ``(N, E)`` or ``(E,)``."""
        if x_t.dim() not in (1, 2) or x_t.shape[-1] != self.embed_dim:
            raise ValueError(f"step expects one token per sequence, shape (N, {self.embed_dim}) or ({self.embed_dim},)")
        unbatched = x_t.dim() == 1
        x = (x_t.unsqueeze(0) if unbatched else x_t).unsqueeze(1)  # [N, 1, E]
        if self._state is not None and self._state.shape[0] != x.shape[0]:
            raise ValueError(f"state holds batch {self._state.shape[0]} but step got batch {x.shape[0]}")
        if x.shape[0] <= ONE_THREAD_ROWS and torch.get_num_threads() > 1:
            with one_thread():
                return self._step(x, unbatched)
        return self._step(x, unbatched)

    def _step(self, x: Tensor, unbatched: bool) -> Tensor:
        q, k, v, log_a, self._conv_window = self._project(x, x, x, None, self._conv_window)
        if self._state is None:
            self._state = q.new_zeros((x.shape[0], self.num_heads, self.head_dim, self.head_dim), dtype=torch.float32)
        if self.delta_rule:
            beta = self._beta(x, None)[:, :, 0]
            o_t, self._state = delta_step(q[:, :, 0], k[:, :, 0], v[:, :, 0], log_a[:, :, 0], beta, self._state)
        else:
            o_t, self._state = liquid_step(
                q[:, :, 0], k[:, :, 0], v[:, :, 0], log_a[:, :, 0], self._state, backend=self.backend
            )
        out = self._output(self._read(o_t.unsqueeze(2)), x)[:, 0]
        return out.squeeze(0) if unbatched else out

    def reset_state(self) -> None:
        """Forget the decode state (the next :meth:`prefill` / :meth:`step` starts from S = 0, empty conv window)."""
        self._state = None
        self._conv_window = None

    def get_state(self) -> Any:
        """A snapshot (copy) of the decode state; decoding goes on without touching it. The ``[N, H, d, d]`` fp32
        state tensor, or with ``short_conv`` a dict ``{"memory": that tensor, "conv": [N, K-1, 3E] window}``."""
        if self._state is None:
            return None
        if self.qkv_conv is None:
            return self._state.clone()
        window = self._conv_window
        if window is None:  # a state installed without a window: the convolution continues from zeros
            window = self._state.new_zeros(self._state.shape[0], self.short_conv - 1, 3 * self.embed_dim)
        return {"memory": self._state.clone(), "conv": window.clone()}

    def set_state(self, state: Any) -> None:
        """Install a decode state as :meth:`get_state` returns it (e.g. from a cache); ``None`` resets."""
        if state is None:
            self.reset_state()
            return
        window = None
        if self.qkv_conv is not None:
            if not isinstance(state, dict) or set(state) != {"memory", "conv"}:
                raise ValueError('with short_conv the state is a dict {"memory": [N, H, d, d], "conv": [N, K-1, 3E]}')
            state, window = state["memory"], state["conv"]
        expected = (self.num_heads, self.head_dim, self.head_dim)
        if not isinstance(state, Tensor) or state.dim() != 4 or tuple(state.shape[1:]) != expected:
            shape = tuple(state.shape) if isinstance(state, Tensor) else type(state).__name__
            raise ValueError(f"state must have shape (N, {expected[0]}, {expected[1]}, {expected[2]}), got {shape}")
        if window is not None:
            expected_window = (state.shape[0], self.short_conv - 1, 3 * self.embed_dim)
            if not isinstance(window, Tensor) or tuple(window.shape) != expected_window:
                shape = tuple(window.shape) if isinstance(window, Tensor) else type(window).__name__
                raise ValueError(f"conv window must have shape {expected_window}, got {shape}")
            window = window.clone()
        self._state = state.to(torch.float32, copy=True)  # steps update the state in place: never alias the caller's
        self._conv_window = window
