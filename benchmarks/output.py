"""What every benchmark writes besides its JSON: a plain-text table, a PNG (grouped bars) and generated blocks of
results pages, in one place."""

from __future__ import annotations

from pathlib import Path


def format_table(rows: list[dict[str, object]], columns: list[str] | None = None) -> str:
    """Left-aligned text table of ``rows`` (floats with 3 significant digits; a missing cell is ``–``)."""
    columns = columns or list(dict.fromkeys(key for row in rows for key in row))

    def cell(value: object) -> str:
        if value is None:
            return "–"
        return f"{value:.3g}" if isinstance(value, float) else str(value)

    body = [[cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in body)) if body else len(c) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in body]
    return "\n".join(lines)


def write_bar_png(path: Path, groups: dict[str, dict[str, float]], ylabel: str, title: str, log: bool = False) -> Path:
    """Grouped bars: one group per key of ``groups``, one bar per series inside it (missing values left out)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = list(dict.fromkeys(name for bars in groups.values() for name in bars))
    fig, ax = plt.subplots(figsize=(max(5.0, 1.4 * len(groups) * max(1, len(series)) / 2), 3.6))
    width = 0.8 / max(1, len(series))
    for i, name in enumerate(series):
        xs = [g + (i - (len(series) - 1) / 2) * width for g, bars in enumerate(groups.values()) if name in bars]
        ys = [bars[name] for bars in groups.values() if name in bars]
        ax.bar(xs, ys, width=width, label=name)
    ax.set_xticks(range(len(groups)), list(groups))
    ax.set(ylabel=ylabel, title=title, yscale="log" if log else "linear")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def replace_between_markers(page: Path, start: str, end: str, text: str) -> None:
    """Rewrite the text between the ``start`` and ``end`` marker lines of ``page`` (the markers stay)."""
    content = page.read_text(encoding="utf-8")
    if start not in content or end not in content:
        raise SystemExit(f"{page} has no {start} ... {end} block to replace")
    head, rest = content.split(start, 1)
    _, tail = rest.split(end, 1)
    page.write_text(f"{head}{start}\n{text}{end}{tail}", encoding="utf-8")


def print_or_update(text: str, page: Path | None, start: str, end: str) -> None:
    """A generated block's one output: printed, or written between the ``start`` and ``end`` markers of ``page``."""
    if page:
        replace_between_markers(page, start, end, text)
    else:
        print(text, end="")
