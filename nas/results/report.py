"""`nas report`: one self-contained HTML page about a study, to open anywhere and share.

Why one file with everything inline (CSS, SVG plots, SVG cell diagrams, no script, no CDN):
a report is mailed, attached to a ticket or opened on a laptop with no network, and must
look the same there. Every text that comes from the database or the user (study name,
config values, genotype strings, error notes) goes through `html.escape`.
"""

from __future__ import annotations

import html
import io
import json
import os
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from nas.db import STATES, Database, SearchRecord, Trial
from nas.errors import BadInput
from nas.search.monitor import human

TOP = 5  # leaderboard rows drawn with their cells
DIAGRAM_CLASS = "cell-diagram"  # one <figure> of this class per drawn cell (the test counts them)

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto;
       max-width: 1200px; padding: 0 1rem; color: #222; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; } h2 { margin-top: 2.2rem; border-bottom:
  1px solid #ddd; padding-bottom: .2rem; }
.sub { color: #666; margin-top: 0; }
table { border-collapse: collapse; margin: .6rem 0; }
th, td { border: 1px solid #ddd; padding: .25rem .6rem; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.plot svg { width: 100%; max-width: 820px; height: auto; }
figure svg { width: 100%; height: auto; }
.pair { display: flex; gap: 1.5rem; flex-wrap: wrap; align-items: flex-start; }
.pair table { margin: 0; }
figure { margin: .8rem 0 1.6rem; border: 1px solid #eee; padding: .4rem; }
figcaption { font-weight: 600; margin-bottom: .3rem; }
code { font-size: 12px; word-break: break-all; color: #444; }
.states span { display: inline-block; margin-right: 1rem; }
.empty { color: #888; font-style: italic; }
"""


def write_report(db: Database, search: SearchRecord, out: Path, storage: str) -> Path:
    """Render the page for `search` and write it to `out` (temp file, then rename)."""
    if out.suffix.lower() not in (".html", ".htm"):
        raise BadInput(f"--out {out}: use a .html file name")
    if not out.parent.exists():
        raise BadInput(f"--out {out}: directory {out.parent} does not exist; create it first")
    page = render_report(db, search, storage)
    fd, tmp_name = tempfile.mkstemp(suffix=".html", dir=out.parent, prefix=".report-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(page)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_name, 0o666 & ~umask)  # a page to share: mkstemp's 0600 is too strict
        Path(tmp_name).replace(out)
    finally:
        Path(tmp_name).unlink(missing_ok=True)
    return out


def render_report(db: Database, search: SearchRecord, storage: str) -> str:
    """The whole page as one string."""
    from nas.results.compare import compare_rows

    trials = db.trials(search.search_id)
    counts = db.state_counts(search.search_id)
    models = compare_rows(storage, study=search.name, on_skipped=None)
    e = html.escape
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>nas report: {e(search.name)}</title><style>{CSS}</style></head><body>",
        f"<h1>Study {e(search.name)}</h1>",
        f'<p class="sub">{e(search.status)} · created {e(_when(search.created_at))} · '
        f"report written {e(_when(datetime.now(UTC)))}</p>",
        "<h2>Settings</h2>", _settings_table(search),
        "<h2>Trials by state</h2>", _states(counts),
        "<h2>Best validation accuracy so far</h2>", _curve(search, trials),
        f"<h2>Leaderboard (top {TOP})</h2>", _leaderboard(trials),
        "<h2>Trained models</h2>", _models(models),
        "</body></html>",
    ]
    return "\n".join(parts)


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]],
           numeric: Sequence[int] = ()) -> str:
    """An HTML table; every cell escaped."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="num">{html.escape(str(v))}</td>' if i in numeric
            else f"<td>{html.escape(str(v))}</td>"
            for i, v in enumerate(row))
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _settings_table(search: SearchRecord) -> str:
    """The stored config (what a --resume would reuse) and what the study ran with, side by
    side in two tables so the page stays short."""
    rows: list[tuple[str, Any]] = [
        ("package version", search.package_version),
        ("data fingerprint", search.data_fingerprint or "-"),
    ]
    for key, value in sorted(search.config.items()):
        if value is None or value == {} or value == []:
            continue
        shown = json.dumps(value, sort_keys=True) if isinstance(value, dict | list) else value
        rows.append((key, shown))
    half = (len(rows) + 1) // 2
    return (f'<div class="pair">{_table(("setting", "value"), rows[:half])}'
            f'{_table(("setting", "value"), rows[half:])}</div>')


def _states(counts: dict[str, int]) -> str:
    shown = {state: counts.get(state, 0) for state in STATES} | counts
    total = sum(shown.values())
    spans = "".join(f"<span><b>{html.escape(state)}</b> {n}</span>" for state, n in shown.items())
    return f'<p class="states">{spans}<span><b>total</b> {total}</span></p>'


def _svg(fig: Any) -> str:
    """A matplotlib figure as inline SVG (the <svg> element only, no XML prologue)."""
    import matplotlib.pyplot as plt

    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(fig)
    return _inline(buffer.getvalue())


def _inline(svg: str) -> str:
    """Drop the XML declaration and DOCTYPE an SVG file starts with: HTML wants the element."""
    return svg[svg.index("<svg"):]


def _curve(search: SearchRecord, trials: Sequence[Trial]) -> str:
    """Each finished trial's validation accuracy at the time it ended, and the best so far."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = sorted((t for t in trials if t.finished_at is not None and t.val_accuracy is not None
                   and t.state in ("COMPLETE", "PRUNED")), key=lambda t: t.finished_at)
    if not done:
        return '<p class="empty">no finished trial with a validation accuracy yet</p>'
    start = search.created_at
    xs = [(t.finished_at - start).total_seconds() for t in done]  # type: ignore[operator]
    best, best_xs, best_ys = -1.0, [], []
    for x, t in zip(xs, done, strict=True):
        if t.state == "COMPLETE" and t.val_accuracy is not None and t.val_accuracy > best:
            best = t.val_accuracy
        if best >= 0:
            best_xs.append(x)
            best_ys.append(100 * best)
    fig, ax = plt.subplots(figsize=(8, 3.2))
    for state, color in (("COMPLETE", "#1f77b4"), ("PRUNED", "#aaaaaa")):
        pts = [(x, 100 * t.val_accuracy) for x, t in zip(xs, done, strict=True)
               if t.state == state]
        if pts:
            ax.scatter(*zip(*pts, strict=True), s=22, color=color, label=f"{state.lower()} trial",
                       zorder=3)
    if best_xs:
        ax.step(best_xs, best_ys, where="post", color="#d62728", linewidth=2,
                label="best so far")
    ax.set_xlabel("seconds since the study started")
    ax.set_ylabel("validation accuracy (%)")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return f'<div class="plot">{_svg(fig)}</div>'


def leaderboard_rows(trials: Sequence[Trial], top: int = TOP) -> list[Trial]:
    """The same order as `nas leaderboard`: COMPLETE by validation accuracy, then PRUNED."""
    done = [t for t in trials if t.state in ("COMPLETE", "PRUNED")]
    done.sort(key=lambda t: (t.state != "COMPLETE", -(t.val_accuracy or 0.0), t.number))
    return done[:top]


def _leaderboard(trials: Sequence[Trial]) -> str:
    from nas.results.diagram import genotype_svg
    from search_spaces import Genotype

    rows = leaderboard_rows(trials)
    if not rows:
        return '<p class="empty">no finished trials yet</p>'
    table = _table(
        ("trial", "state", "val acc", "params", "mult-adds", "epochs", "seconds", "key", "note"),
        [(t.number, t.state, "-" if t.val_accuracy is None else f"{t.val_accuracy:.4f}",
          human(t.params), human(t.mult_adds), t.epochs,
          "-" if t.duration_s is None else f"{t.duration_s:.1f}", (t.key or "-")[:8],
          f"duplicate of {t.duplicate_of}" if t.duplicate_of is not None
          else (t.error or "").split("\n", 1)[0]) for t in rows],
        numeric=(0, 2, 3, 4, 5, 6))
    figures = []
    for t in rows:
        if t.genotype is None:
            continue
        genotype = Genotype.from_dict(t.genotype)
        acc = "-" if t.val_accuracy is None else f"{t.val_accuracy:.4f}"
        figures.append(
            f'<figure class="{DIAGRAM_CLASS}"><figcaption>trial {t.number} · {t.state} · '
            f"val acc {acc}</figcaption>{_inline(genotype_svg(genotype, f'trial {t.number}'))}"
            f"<code>{html.escape(json.dumps(t.genotype, sort_keys=True))}</code></figure>")
    return table + "".join(figures)


def _models(rows: Sequence[dict[str, Any]]) -> str:
    """The comparison table and the accuracy-vs-mult-adds plot, when models were trained."""
    from nas.results.compare import label, plot_compare

    if not rows:
        return ('<p class="empty">no trained models in this database yet: run `nas train '
                'STUDY:best`, `nas baselines` or `nas transfer`</p>')
    table = _table(
        ("arch", "kind", "layout", "preset", "params", "mult-adds", "accuracy", "epochs",
         "train s", "front"),
        [(label(r), r["kind"], r["layout"], r["preset"] or "-", human(r["params"]),
          human(r["mult_adds"]), "-" if r["accuracy"] is None else f"{100 * r['accuracy']:.2f}%",
          "-" if r["epochs"] is None else r["epochs"],
          "-" if r["train_seconds"] is None else f"{r['train_seconds']:.0f}",
          "*" if r.get("pareto") else "") for r in rows],
        numeric=(4, 5, 6, 7, 8))
    with tempfile.TemporaryDirectory(prefix="nas-report-") as tmp:
        try:
            path = plot_compare(rows, Path(tmp) / "compare.svg")
        except BadInput:  # no row with an accuracy and mult-adds: the table says it all
            return table
        plot = _inline(path.read_text(encoding="utf-8"))
    return f'{table}<div class="plot">{plot}</div>'
