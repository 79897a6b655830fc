"""Optional extras: which modules each one brings, and the typed error a command gives when one is missing.

A subcommand imports its optional dependencies only when it runs, inside :func:`extra_required`; a module of the
extra that is not installed becomes :class:`~liquid_memory.errors.ExtraMissing` naming the extra to install, so a
base install (the wheel and torch) still runs ``verify``, ``license`` and ``bench``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from liquid_memory.errors import ExtraMissing

# extra (setup.py extras_require) -> the top-level modules of its packages that the CLI's commands import
EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "bench": ("matplotlib",),
    "lm": ("gradio", "tokenizers", "matplotlib"),
    "hf": ("transformers", "peft", "safetensors", "gguf", "accelerate", "matplotlib"),
}


@contextmanager
def extra_required(extra: str, command: str) -> Iterator[None]:
    """Run the body; a missing module of ``extra`` becomes ``ExtraMissing`` (any other import error propagates)."""
    try:
        yield
    except ModuleNotFoundError as err:
        missing = module_of_extra(err, extra)
        if missing is None:
            raise
        raise ExtraMissing(
            f"`liquid-memory {command}` needs the '{extra}' extra ({missing} is not installed)",
            remedy=f"pip install 'liquid-memory[{extra}]'",
        ) from None


def module_of_extra(err: ModuleNotFoundError, extra: str) -> str | None:
    """The top-level module ``err`` could not import, when it belongs to ``extra`` (else ``None``: a real bug)."""
    missing = (err.name or "").partition(".")[0]
    return missing if missing in EXTRA_MODULES[extra] else None
