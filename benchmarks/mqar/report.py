"""The MQAR table (markdown), the target verdict and the plots, from one or more results files."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.mqar.sweep import FORMAT, load_runs, relabel_heads, run_key, run_seeds

TARGET_SETTING = "T256-kv16-d128-L2"  # prefix: the target setting, whatever heads/vocab
TARGET_ACCURACY = 0.90
TARGET_STEP_RATIO = 1.5


def _without_heads(label: str) -> str:
    """The label without its head count: attention of any head count is the baseline of a setting."""
    return relabel_heads(label, "*")


def merge(paths: list[Path]) -> dict:
    """All runs of several results files (later files win for the same setting, model and seed)."""
    runs: dict[tuple, dict] = {}
    commands: list[str] = []
    environment = {}
    for path in paths:
        doc = load_runs(path)
        if not doc["runs"]:
            raise ValueError(f"{path} holds no runs")
        for cmd in doc.get("commands", []):
            if cmd not in commands:
                commands.append(cmd)
        environment = doc.get("environment", environment)
        for run in doc["runs"]:
            runs[run_key(run)] = run
    return {"format": FORMAT, "commands": commands, "environment": environment, "runs": list(runs.values())}


def _attention_steps(runs: list[dict], setting: str, seeds: tuple[int, int]) -> tuple[int | None, int | None]:
    """Attention (any head count) in the same setting, on the same batches and with the same init seed: its fewest
    steps to the target accuracy (any learning rate), and the longest run that stopped *without* reaching it (then
    attention needs more than that many steps)."""
    key = f"{TARGET_ACCURACY:.2f}"
    setting = _without_heads(setting)
    same = [r for r in runs if _without_heads(r["setting"]) == setting and r["mixer"] == "attention"
            and run_seeds(r) == seeds]  # fmt: skip
    reached = [r["steps_to"][key] for r in same if r["steps_to"].get(key) is not None]
    unreached = [r["steps_run"] for r in same if r["steps_to"].get(key) is None]
    return (min(reached) if reached else None), (max(unreached) if unreached else None)


def annotate(doc: dict) -> dict:
    """Add each run's steps-to-0.90 ratio against attention in the same setting and seed, and the verdict.

    When attention never reached 0.90 (e.g. stopped by a time budget after N steps) its steps to 0.90 exceed N,
    so a run that reached 0.90 after s steps has a ratio below s / N: recorded as ``steps_ratio_upper_bound``.
    Conversely a run that stopped after s steps without reaching 0.90 needs more than s / (attention's steps):
    ``steps_ratio_lower_bound`` (a run capped at the rule's limit shows ``> 1.5``).
    """
    runs = doc["runs"]
    for run in runs:
        mine = run["steps_to"].get(f"{TARGET_ACCURACY:.2f}")
        base, longest = _attention_steps(runs, run["setting"], run_seeds(run))
        run["steps_ratio_vs_attention"] = round(mine / base, 2) if mine and base else None
        bound = mine / longest if mine and not base and longest else None
        run["steps_ratio_upper_bound"] = round(bound, 2) if bound is not None else None
        lower = run["steps_run"] / base if not mine and base and run["mixer"] != "attention" else None
        run["steps_ratio_lower_bound"] = round(lower, 2) if lower is not None else None
    verdicts = []
    for run in runs:
        if run["setting"].startswith(TARGET_SETTING) and run["mixer"] == "liquid":
            ratio, bound = run["steps_ratio_vs_attention"], run["steps_ratio_upper_bound"]
            within = (ratio is not None and ratio <= TARGET_STEP_RATIO) or (
                bound is not None and bound <= TARGET_STEP_RATIO
            )
            hit = run["best_accuracy"] >= TARGET_ACCURACY and within
            verdicts.append({"model": run["model"], "setting": run["setting"], "best_accuracy": run["best_accuracy"],
                             "lr": run["train"]["lr"], "seed": run["train"]["seed"],
                             "steps_ratio_vs_attention": ratio, "steps_ratio_upper_bound": bound,
                             "steps_ratio_lower_bound": run["steps_ratio_lower_bound"],
                             "target_met": hit, "decided": hit or _decided_miss(run)})  # fmt: skip
    doc["target"] = {
        "rule": f"accuracy >= {TARGET_ACCURACY} at {TARGET_SETTING}, within {TARGET_STEP_RATIO}x attention's steps",
        "verdicts": verdicts,
    }
    return doc


def _decided_miss(run: dict) -> bool:
    """A run below the target is a miss only if it ran to the rule's limit (or attention gives no limit); one
    stopped earlier (e.g. by a time budget) leaves the verdict open."""
    lower = run["steps_ratio_lower_bound"]  # None for a run that reached 0.90 or has no attention to compare with
    return lower is None or lower >= TARGET_STEP_RATIO


def _ratio(run: dict) -> str:
    if run.get("steps_ratio_vs_attention") is not None:
        return f"{run['steps_ratio_vs_attention']}"
    if run.get("steps_ratio_upper_bound") is not None:
        return f"< {run['steps_ratio_upper_bound']}"
    if run.get("steps_ratio_lower_bound") is not None:
        return f"> {run['steps_ratio_lower_bound']}"
    return "—"


def _fmt(value, spec: str = "") -> str:
    return "—" if value is None else format(value, spec)


def table(doc: dict) -> str:
    """One markdown row per run, grouped by setting."""
    head = (
        "| setting | model | lr | seed | params | state | best acc | final acc | steps→0.50 | steps→0.90 | steps→0.95 "
        "| ×attn (0.90) | steps run | ms/step | time s | stop |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for run in sorted(doc["runs"], key=lambda r: (r["setting"], r["model"], r["train"]["lr"], r["train"]["seed"])):
        steps = run["steps_to"]
        lines.append(
            f"| {run['setting']} | {run['model']} | {run['train']['lr']:g} | {run['train']['seed']} "
            f"| {run['parameters']:,} "
            f"| {run['state_size']:,} "
            f"| {run['best_accuracy']:.3f} | {run['final_accuracy']:.3f} | {_fmt(steps.get('0.50'))} "
            f"| {_fmt(steps.get('0.90'))} | {_fmt(steps.get('0.95'))} | {_ratio(run)} "
            f"| {run['steps_run']} | {run['seconds_per_step'] * 1000:.0f} | {run['train_seconds']:.0f} "
            f"| {run['stop_reason']} |"
        )
    return "\n".join(lines)


def _label(run: dict) -> str:
    return f"{run['model']} (lr {run['train']['lr']:g})"


def _target_seeds(runs: list[dict], prefix: str = TARGET_SETTING) -> tuple[str | None, list[int]]:
    """The variant of the setting ``prefix`` names (the target by default; e.g. one training mixture) with the most
    seeds at which attention and LiquidMemory both ran, and those seeds: the same-run comparisons of the verdicts."""
    seeds: dict[str, dict[str, set[int]]] = {}
    for run in runs:
        init_seed, data_seed = run_seeds(run)
        if run["setting"].startswith(prefix) and init_seed == data_seed:
            by_mixer = seeds.setdefault(_without_heads(run["setting"]), {})
            by_mixer.setdefault(run["mixer"], set()).add(run["train"]["seed"])
    both = {s: sorted(m.get("attention", set()) & m.get("liquid", set())) for s, m in seeds.items()}
    best = max(sorted(both), key=lambda s: len(both[s]), default=None)
    return best, (both[best] if best else [])


def _seed_panel(ax, runs: list[dict], setting: str, seed: int, colours: dict) -> None:
    """One setting at one seed: every run's accuracy curve, attention's step to 0.90 and the rule's limit."""
    mine = [r for r in runs if _without_heads(r["setting"]) == setting and run_seeds(r) == (seed, seed)]
    for run in mine:
        steps = [row["step"] for row in run["history"]]
        ax.plot(steps, [row["accuracy"] for row in run["history"]], color=colours[_label(run)], label=_label(run),
                linewidth=1.2, linestyle="--" if run["mixer"] == "attention" else "-")  # fmt: skip
    base = _attention_steps(runs, mine[0]["setting"], (seed, seed))[0] if mine else None
    limit = ""
    if base:
        ax.axvline(base, color="black", linestyle=":", linewidth=0.8)
        ax.axvline(base * TARGET_STEP_RATIO, color="red", linestyle=":", linewidth=0.8)
        limit = f"\nattention 0.90 at {base} (black); the rule's limit {base * TARGET_STEP_RATIO:g} (red)"
    _steps_axes(ax, f"seed {seed}, same batches for every model: {setting}{limit}", 8)
    ax.legend(fontsize=6, loc="upper left")  # the runs of this seed only: a short list


def _steps_axes(ax, title: str, fontsize: int) -> None:
    """The decoration every accuracy-vs-steps panel shares: the 0.90 line, labels, limits."""
    ax.axhline(TARGET_ACCURACY, color="grey", linestyle="--", linewidth=0.8)
    ax.set_xlabel("training steps")
    ax.set_ylabel("held-out accuracy")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(title, fontsize=fontsize)


def _figure_key(fig, colours: dict) -> None:
    """One colour per model for every panel, and what the line styles mean, in one legend beside the panels
    (per-panel legends of a mixture panel listed every run three times and covered the curves)."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=colour, linewidth=2, label=label) for label, colour in colours.items()]
    handles += [
        Line2D([], [], color="grey", linestyle="-", label="accuracy on the run's setting"),
        Line2D([], [], color="grey", linestyle="--", label="attention (seed panels)"),
        Line2D([], [], color="grey", linestyle=":", linewidth=0.8, label="mixture run: on its 1st other setting"),
        Line2D([], [], color="grey", linestyle="-.", linewidth=0.8, label="mixture run: on its 2nd other setting"),
    ]
    fig.legend(handles=handles, loc="center right", fontsize=7, frameon=False)


def plot(doc: dict, png: Path, seed_panels: str = TARGET_SETTING) -> None:
    """Top row: best accuracy vs state size (log x), every run; then one accuracy-vs-steps panel per setting (≤ 4).
    Bottom row (when the setting ``seed_panels`` names — the target by default — ran at several seeds): one panel
    per seed, the same-run comparisons of the verdicts, with attention's step to 0.90 and the rule's limit."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = doc["runs"]
    labels = sorted({_label(r) for r in runs})
    colours = {m: plt.get_cmap("tab20")(i % 20) for i, m in enumerate(labels)}
    settings = sorted({r["setting"] for r in runs})
    shown = sorted(settings, key=lambda s: (not s.startswith(TARGET_SETTING), s))[:4]  # the target's first
    seed_setting, seeds = _target_seeds(runs, seed_panels)
    rows = 2 if len(seeds) > 1 else 1
    cols = max(1 + len(shown), len(seeds) if rows == 2 else 0)
    fig, axes = plt.subplots(rows, cols, figsize=(6 * cols + 2.6, 5.5 * rows), squeeze=False)
    left = axes[0][0]
    markers = "osD^v<>ph*"
    for run in runs:
        left.scatter(run["state_size"], run["best_accuracy"], color=colours[_label(run)],
                     marker=markers[settings.index(run["setting"]) % len(markers)], s=40)  # fmt: skip
    for i, setting in enumerate(settings):
        left.scatter([], [], color="grey", marker=markers[i % len(markers)], label=setting)
    left.set_xscale("log")
    left.set_xlabel("state size (floats of decode state, all layers)")
    left.set_ylabel("best held-out accuracy")
    left.set_ylim(-0.02, 1.02)
    left.set_title("MQAR accuracy vs state size")
    left.legend(fontsize=6, loc="lower right", title="setting (marker)", title_fontsize=6)
    for ax, setting in zip(axes[0][1 : 1 + len(shown)], shown, strict=True):
        for run in runs:
            if run["setting"] == setting:
                steps = [row["step"] for row in run["history"]]
                accs = [row["accuracy"] for row in run["history"]]
                ax.plot(steps, accs, color=colours[_label(run)], label=_label(run), linewidth=1.2)
                # a mixture run: its other training settings' held-out accuracy, thin (where it learns first)
                names = [n for n in run["history"][0].get("mix_accuracy", {})] if run["history"] else []
                for name, style in zip(names, [":", "-.", (0, (1, 3))], strict=False):
                    mix_accs = [row["mix_accuracy"][name] for row in run["history"]]
                    ax.plot(steps, mix_accs, color=colours[_label(run)], linestyle=style, linewidth=0.8)
        _steps_axes(ax, f"accuracy vs steps: {setting}", 9)
    if rows == 2:
        for ax, seed in zip(axes[1], seeds, strict=False):
            _seed_panel(ax, runs, seed_setting, seed, colours)
    for row in axes:
        for ax in row:
            if not ax.has_data():
                ax.set_axis_off()
    _figure_key(fig, colours)
    fig.tight_layout(rect=(0, 0, 1 - 2.6 / (6 * cols + 2.6), 1))  # room on the right for the key
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=80)
    plt.close(fig)


def report(paths: list[Path], out_json: Path | None, png: Path | None, seed_panels: str = TARGET_SETTING) -> str:
    """Merge, annotate, write the combined JSON and the PNG; return the table and verdicts as text."""
    doc = annotate(merge(paths))
    if out_json is not None:
        out_json.parent.mkdir(parents=True, exist_ok=True)
        out_json.write_text(json.dumps(doc, indent=1) + "\n")
    if png is not None:
        plot(doc, png, seed_panels)
    text = [table(doc), ""]
    for v in doc["target"]["verdicts"]:
        text.append(
            f"target ({doc['target']['rule']}): {v['model']} ({v['setting']}, lr {v['lr']:g}, seed {v['seed']}) best "
            f"{v['best_accuracy']:.3f}, steps ×attention {_ratio(v)} → "
            f"{'HIT' if v['target_met'] else 'MISS' if v['decided'] else 'UNDECIDED (stopped before the limit)'}"
        )
    return "\n".join(text)
