"""Loss curves as a PNG (matplotlib, headless Agg backend)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_losses(logs: dict[str, dict[str, Any]], path: str | Path, title: str) -> None:
    """One line per run: training loss per step (thin) and held-out loss at its evaluations (markers)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name, log in logs.items():
        steps = [r["step"] for r in log["steps"]]
        (line,) = ax.plot(steps, [r["loss"] for r in log["steps"]], lw=0.8, alpha=0.8, label=f"{name} train")
        if log.get("evals"):
            ax.plot([e["step"] for e in log["evals"]], [e["heldout_loss"] for e in log["evals"]], "o--",
                    color=line.get_color(), label=f"{name} held-out")  # fmt: skip
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats / token)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
