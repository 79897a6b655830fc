"""Run MQAR over settings × models, appending every finished run to a JSON file at once (a long sweep that is
stopped keeps what it measured, and a re-run skips the runs already in the file)."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from benchmarks.mqar.data import MQARTask
from benchmarks.mqar.models import (
    ModelShape,
    ModelSpec,
    answer_logits,
    build_model,
    heads_of,
    state_size,
)
from benchmarks.mqar.train import TrainConfig, train_mqar

FORMAT = "liquid-memory-mqar/1"


@dataclass(frozen=True)
class Setting:
    """One point of the sweep: the task and the model shape every compared model shares."""

    task: MQARTask
    shape: ModelShape

    @property
    def key(self) -> str:
        return self.key_with_heads(self.shape.n_heads)

    def key_with_heads(self, n_heads: int) -> str:
        t, s = self.task, self.shape
        return f"T{t.seq_len}-kv{t.num_kv_pairs}-d{s.d_model}-L{s.n_layers}-H{n_heads}-V{t.vocab_size}"


# The target setting (sequence 256, 16 pairs, d_model 128, 2 layers) and a smaller grid around it.
TARGET = [(256, 16, 128)]
SMALL = [(64, 4, 64)]
GRID = [(64, 4, 64), (128, 8, 64), (256, 16, 64), (512, 32, 128), (512, 64, 256)]
PRESETS = {"target": TARGET, "small": SMALL, "grid": GRID}


def settings_from(
    triples: list[tuple[int, int, int]], *, n_layers: int, n_heads: int, vocab_size: int, backend: str | None
) -> list[Setting]:
    """``(seq_len, num_kv_pairs, d_model)`` triples → settings (validated by ``MQARTask``)."""
    return [
        Setting(MQARTask(seq_len=t, num_kv_pairs=n, vocab_size=vocab_size), ModelShape(d, n_layers, n_heads, backend))
        for t, n, d in triples
    ]


def run_seeds(run: dict) -> tuple[int, int]:
    """A recorded run's (init seed, data seed): ``train.data_seed`` is ``None`` when it was not set apart from the
    seed; then the batches came from the seed, as :attr:`TrainConfig.batch_seed` says."""
    train = run["train"]
    data_seed = train["data_seed"]
    return train["seed"], train["seed"] if data_seed is None else data_seed


def run_key(run: dict) -> tuple:
    """What identifies a run: setting (with its training mixture), model, init seed, learning rate, batch size and
    the seed of its batches."""
    train = run["train"]
    return (run["setting"], run["model"], train["seed"], train["lr"], train["batch_size"], run_seeds(run)[1])


def setting_label(setting: Setting, cfg: TrainConfig, spec: ModelSpec | None = None) -> str:
    """The setting's key with the head count ``spec`` is really built with (a ``-h1`` spec says ``H1``), plus
    ``-plain`` for the plain stack (``plain.py``: compared with attention in the plain stack only), and
    ``-mix[...]`` when trained on a mixture (a different experiment: its own table rows, and its LiquidMemory runs
    are compared with attention trained on the same mixture; the report ignores the head count for that)."""
    key = setting.key if spec is None else setting.key_with_heads(heads_of(spec, setting.shape))
    plain = "-plain" if spec is not None and spec.stack == "plain" else ""  # its own baseline: plain attention
    return key + plain + (f"-mix[{cfg.train_mix}]" if cfg.train_mix else "")


def relabel_heads(label: str, heads: int | str) -> str:
    """``label`` (a :meth:`Setting.key_with_heads` spelling) with its head count replaced by ``heads``."""
    return re.sub(r"-H\d+-", f"-H{heads}-", label, count=1)


def load_runs(path: Path) -> dict:
    """The results document at ``path`` (a fresh one if it does not exist); a foreign file is a ``ValueError``."""
    if not path.exists():
        return {"format": FORMAT, "runs": []}
    doc = json.loads(path.read_text())
    if doc.get("format") != FORMAT:
        raise ValueError(f"{path} is not an MQAR results file (format {doc.get('format')!r}, expected {FORMAT})")
    return doc


def _source_digest() -> str:
    """SHA-256 over the sources that decide the models (LiquidLM, LiquidMemory, the ops, this benchmark), to tie
    results to code."""
    import liquid_memory

    package = Path(liquid_memory.__file__).parent
    folders = [(package, name) for name in ("models", "nn", "ops")] + [(Path(__file__).parents[1], "mqar")]
    digest = hashlib.sha256()
    for root, folder in folders:
        for path in sorted((root / folder).rglob("*.py")):
            digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def _environment() -> dict:
    return {
        "source_sha256_16": _source_digest(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "lm_backend": os.environ.get("LM_BACKEND"),
    }


def run_one(setting: Setting, spec: ModelSpec, cfg: TrainConfig, log: Callable[[str], None]) -> dict:
    """Train one model on one setting and return its JSON row."""
    model = build_model(spec, setting.shape, setting.task, cfg.seed)
    params = sum(p.numel() for p in model.parameters())
    state = state_size(model, setting.task.seq_len)
    label = setting_label(setting, cfg, spec)
    log(f"[{label}] {spec.name}: {params:,} parameters, state {state:,} floats")
    result = train_mqar(model, answer_logits, setting.task, cfg, log=log)
    log(
        f"[{label}] {spec.name}: best acc {result.best_accuracy:.3f} after {result.steps_run} steps, "
        f"steps to 0.90: {result.steps_to.get('0.90')}, {result.train_seconds:.0f}s "
        f"({result.seconds_per_step * 1000:.0f} ms/step; {result.stop_reason})"
    )
    return {
        "setting": label,
        "model": spec.name,
        "mixer": spec.mixer,
        "options": spec.options,
        "init": spec.init,
        "stack": spec.stack,
        "note": spec.note,
        "task": setting.task.as_dict(),
        "shape": asdict(setting.shape),
        "train": asdict(cfg),
        "parameters": params,
        "state_size": state,
        **result.as_dict(),
        "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def run_sweep(
    settings: list[Setting],
    specs: list[ModelSpec],
    cfg: TrainConfig,
    json_path: Path,
    command: str,
    log: Callable[[str], None] = print,
) -> dict:
    """Every (setting, model) pair not yet in ``json_path``, in order; the file is rewritten after each run."""
    doc = load_runs(json_path)
    doc.setdefault("commands", [])
    if command not in doc["commands"]:
        doc["commands"].append(command)
    doc["environment"] = _environment()
    done = {run_key(r) for r in doc["runs"]}
    json_path.parent.mkdir(parents=True, exist_ok=True)
    for setting in settings:
        for spec in specs:
            label = setting_label(setting, cfg, spec)
            if (label, spec.name, cfg.seed, cfg.lr, cfg.batch_size, cfg.batch_seed) in done:
                log(f"[{label}] {spec.name}: already in {json_path}, skipped")
                continue
            doc["runs"].append(run_one(setting, spec, cfg, log))
            tmp = json_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(doc, indent=1) + "\n")
            tmp.replace(json_path)
    return doc
