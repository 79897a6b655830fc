"""Typed errors of the LiquidLM tools (``liquid-memory lm ...``): each says what went wrong and what to do."""

from __future__ import annotations

from liquid_memory.errors import LiquidMemoryError


class LMError(LiquidMemoryError):
    """Base class of the LiquidLM training / chat / UI errors (codes LM6xx)."""

    code = "LM600"


class DataError(LMError):
    """Training text is missing, empty, or too short for one training window."""

    code = "LM601"
    default_remedy = "pass --data FILE_OR_FOLDER with UTF-8 text (.txt/.md), or omit it to use the bundled essays"


class CheckpointError(LMError):
    """A checkpoint file is missing, unreadable, or not a LiquidLM checkpoint."""

    code = "LM602"
    default_remedy = "pass the checkpoint.pt written by `liquid-memory lm train` (see its --out-dir)"


class CheckpointMismatch(LMError):
    """A checkpoint was trained with another model configuration than the one asked for."""

    code = "LM603"
    default_remedy = "use the same model options as the run that wrote the checkpoint, or start a new --out-dir"


class PromptError(LMError):
    """A prompt is empty or longer than the configured limit."""

    code = "LM604"
    default_remedy = "shorten the prompt, or raise the limit with --max-prompt-tokens"


class TrainingSetupError(LMError):
    """Training options that cannot work together (e.g. a global batch that the processes cannot share)."""

    code = "LM605"
    default_remedy = "check the options of `liquid-memory lm train --help`"
