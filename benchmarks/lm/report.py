"""The ``lm bench`` table (markdown) and figure (PNG) from its results dict."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def render_table(results: dict[str, Any]) -> str:
    runs = results["runs"]
    lines = [
        "# LiquidLM benchmark",
        "",
        f"Command: `{results.get('command')}`",
        "",
        _data_line(results) + f" liquid backend: {results.get('liquid_backend', 'n/a')}. "
        f"Machine: {results.get('machine', {}).get('platform')}.",
        "",
    ]
    lens = sorted({r["seq_len"] for run in runs.values() for r in run["train_throughput"]})
    lines.append("| mixer | params | held-out loss (mean over seeds) | held-out ppl | train s | " +
                 "".join(f"train tok/s @{n} | " for n in lens))  # fmt: skip
    lines.append("|---|---|---|---|---|" + "---|" * len(lens))
    for mixer, run in runs.items():
        speed = {r["seq_len"]: r["tokens_per_s"] for r in run["train_throughput"]}
        lines.append(
            f"| {mixer} | {run['parameters'] / 1e6:.2f}M | {_f(run.get('heldout_loss'), 4)} "
            f"| {_ppl_cell(run)} | {_f(run.get('train_seconds'), 0)} | "
            + "".join(f"{_f(speed.get(n), 0)} | " for n in lens).rstrip()
        )
    contexts = sorted({g["context"] for run in runs.values() for g in run["generation"]})
    if contexts:
        lines += ["", "Generation: ms per token (decode-state MB) with N tokens of context already in the state", ""]
        lines.append("| mixer | " + " | ".join(f"ctx {c}" for c in contexts) + " |")
        lines.append("|---|" + "---|" * len(contexts))
    for mixer, run in runs.items() if contexts else ():
        by_context = {g["context"]: g for g in run["generation"]}
        cells = [
            f"{by_context[c]['ms_per_token']:.2f} ({by_context[c]['state_bytes'] / 2**20:.2f} MB)" if c in by_context
            else "—" for c in contexts
        ]  # fmt: skip
        lines.append(f"| {mixer} | " + " | ".join(cells) + " |")
    lines += ["", "Targets:", ""]
    for name, value in results.get("targets", {}).items():
        if isinstance(value, dict):
            verdict = "met" if value["met"] else "MISSED"
            per_seed = ", ".join(f"seed {p['seed']}: {p['ratio']:.3f}" for p in value.get("per_seed", []))
            lines.append(f"- {name}: {value['value']:.3f} (target {value['target']}) — {verdict}"
                         + (f" [{per_seed}]" if per_seed else ""))  # fmt: skip
        else:
            lines.append(f"- {name}: {value:.3f}")
    return "\n".join(lines) + "\n"


def _data_line(results: dict[str, Any]) -> str:
    """What the models were trained on — or, for a speed-only run (``--steps 0``), that they were not."""
    if not results.get("tokens_seen"):
        return "Speed only (--steps 0): untrained weights (speed does not depend on them), no training data."
    return (
        f"Data: {results.get('data')}; {results.get('train_tokens')} training / {results.get('heldout_tokens')} "
        f"held-out tokens; every model saw the same {results.get('tokens_seen')} tokens."
    )


def _ppl_cell(run: dict[str, Any]) -> str:
    """``exp(mean loss)``, with the per-seed range when there is more than one seed."""
    seeds = run.get("seeds") or []
    if len(seeds) < 2:
        return _f(run.get("heldout_ppl"), 2)
    return f"{run['heldout_ppl']:.2f} ({run['heldout_ppl_min']:.1f}–{run['heldout_ppl_max']:.1f}, {len(seeds)} seeds)"


def _f(value: float | None, digits: int) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def render_png(results: dict[str, Any], logs: dict[str, Any], path: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullLocator

    runs = results["runs"]
    lens = sorted({r["seq_len"] for run in runs.values() for r in run["train_throughput"]})
    has_generation = any(run["generation"] for run in runs.values())
    trained = any(log.get("steps") for log in logs.values())  # a speed-only run (--steps 0) has no loss panel
    panels = trained + bool(lens) + 2 * has_generation  # a quality-only run (no speed phase) draws just the losses
    if not panels:
        raise ValueError("nothing to plot: no training steps, no throughput and no generation figures")
    fig, axes = plt.subplots(1, panels, figsize=(4.5 * panels, 4.2), squeeze=False)
    axes = list(axes[0])
    if trained:
        _loss_panel(axes.pop(0), results, logs)
    if lens:
        ax = axes.pop(0)
        width = 0.8 / max(1, len(runs))
        for i, (mixer, run) in enumerate(runs.items()):
            speed = {r["seq_len"]: r["tokens_per_s"] for r in run["train_throughput"]}
            ax.bar([j + i * width for j in range(len(lens))], [speed.get(n, 0) for n in lens], width, label=mixer)
        ax.set_xticks([j + width * (len(runs) - 1) / 2 for j in range(len(lens))], [f"seq {n}" for n in lens])
        ax.set(title="training throughput", ylabel="tokens / s")
        ax.legend(fontsize=8)
    if has_generation:
        for ax, key, title, scale in ((axes[0], "ms_per_token", "generation time per token (ms)", 1.0),
                                      (axes[1], "state_bytes", "decode state (MB)", 2.0**-20)):  # fmt: skip
            for mixer, run in runs.items():
                gen = run["generation"]
                ax.plot([g["context"] for g in gen], [g[key] * scale for g in gen], "o-", label=mixer)
            ax.set(title=title, xlabel="context tokens", xscale="log", yscale="log")
            contexts = sorted({g["context"] for run in runs.values() for g in run["generation"]})
            ax.set_xticks(contexts, [str(c) for c in contexts], minor=False)  # the measured contexts, not 3×10²
            ax.xaxis.set_minor_locator(NullLocator())
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _loss_panel(ax, results: dict[str, Any], logs: dict[str, Any]) -> None:
    """Training loss per mixer (first seed) and every seed's held-out evaluations as markers."""
    runs = results["runs"]
    for mixer, log in logs.items():
        (line,) = ax.plot([r["step"] for r in log["steps"]], [r["loss"] for r in log["steps"]], lw=0.7, label=mixer)
        for seed in runs.get(mixer, {}).get("seeds") or [{"evals": log.get("evals") or []}]:  # every seed's evals
            evals = seed["evals"]
            ax.plot([e["step"] for e in evals], [e["heldout_loss"] for e in evals], "o--", color=line.get_color(), ms=3)
    title = "train loss (seed 1st), held-out (o, all seeds)"
    ax.set(title=title if len(results.get("setup", {}).get("seeds", [0])) > 1 else "training loss, held-out (markers)",
           xlabel="step", ylabel="nats / token")  # fmt: skip
    ax.legend(fontsize=8)
