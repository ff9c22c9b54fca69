"""`nas compare`: every trained model in the database in one table — searched cells, published
genotypes, hand-designed baselines — and a plot of accuracy against mult-adds.

Why one table: the claim of a cell search is that the found cell beats networks people
designed, at the same cost; that is only checkable when all of them sit side by side with
their budget (preset), cost, accuracy and training time. Rows come from the models table
(`nas train`, `nas transfer`, `nas baselines` all write it, each with its model card), so
nothing is re-measured here and nothing is guessed: every fact comes from the card.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from nas.errors import BadInput
from search_spaces import BASELINES, PUBLISHED

KINDS = ("searched", "custom", "published", "baseline")
KIND_COLORS = {"searched": "#d62728", "custom": "#2ca02c", "published": "#1f77b4",
               "baseline": "#7f7f7f"}
LAYOUT_TITLES = {"cifar": "CIFAR-10 layout: test accuracy",
                 "imagenet": "ImageNet layout: val top-1"}


def model_kind(arch: str) -> str:
    """searched (a study's trial, STUDY:N), custom (a genotype file: the table cannot tell
    whether a search or a person wrote it), published (genotype), or baseline."""
    if arch in BASELINES:
        return "baseline"
    if arch in PUBLISHED:
        return "published"
    return "searched" if ":" in arch else "custom"


def _row(record: Any) -> dict[str, Any] | None:
    """A table row from the record's model card alone; None for a row written before the
    card existed (no facts to show without guessing)."""
    from workers.card import CardError, ModelCard

    if record.card is None:
        return None
    try:
        card = ModelCard.from_dict(record.card)
    except CardError as exc:
        raise BadInput(f"models row {record.model_id} ({record.arch}): {exc}") from None
    arch, metrics = card.architecture, card.metrics
    return {
        "model_id": record.model_id,
        "arch": arch.ref,
        "kind": model_kind(arch.ref),
        "source": record.kind,  # which command trained it: train, transfer, baseline
        "layout": arch.layout,
        "preset": card.recipe.preset,
        "image_size": card.input.image_size,
        "cells": arch.cells,
        "filters": arch.filters,
        "stem_stride": arch.settings.get("stem_stride", 1) if arch.kind == "genotype" else None,
        "width": arch.width,
        "params": card.cost.params,
        "mult_adds": card.cost.mult_adds,
        "accuracy": metrics.accuracy,
        "top5": metrics.top5,
        "epochs": metrics.epochs,
        "train_seconds": metrics.train_seconds,
        "images_per_s": metrics.images_per_s,
        "lr": card.recipe.lr,
        "seed": card.recipe.seed,
        "lr_pick": card.recipe.lr_pick,  # grid, validation accuracy per lr, seconds; or None
        "key": arch.key,
        "checkpoint": record.checkpoint,
        "created": record.created_at.isoformat(timespec="seconds"),
    }


def over_seeds(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (arch, its size, layout, preset): the newest model of each seed, the
    accuracy their mean. `seeds`, `accuracy_per_seed` and `accuracy_sd` (sample sd; None for
    one seed) say how far a small difference can be trusted; the other facts are the newest
    row's."""
    import statistics

    groups: dict[tuple[Any, ...], dict[int, dict[str, Any]]] = {}
    for r in rows:  # model_id order: a later row of the same seed replaces the earlier one
        key = (r["arch"], r["cells"], r["filters"], r["stem_stride"], r["width"], r["layout"],
               r["preset"])
        groups.setdefault(key, {})[r["seed"]] = r
    out = []
    for by_seed in groups.values():
        newest = max(by_seed.values(), key=lambda r: r["model_id"])
        seeds = sorted(by_seed)
        scores = [by_seed[s]["accuracy"] for s in seeds]
        known = [a for a in scores if a is not None]
        out.append({**newest, "seeds": seeds, "accuracy_per_seed": scores,
                    "accuracy": statistics.mean(known) if known else None,
                    "accuracy_sd": statistics.stdev(known) if len(known) > 1 else None})
    return out


def pareto_front(rows: Sequence[dict[str, Any]]) -> set[int]:
    """model_ids no other row beats: at most the mult-adds and at least the accuracy."""
    scored = [r for r in rows if r["accuracy"] is not None and r["mult_adds"] is not None]
    front = set()
    for r in scored:
        dominated = any(
            o["mult_adds"] <= r["mult_adds"] and o["accuracy"] >= r["accuracy"]
            and (o["mult_adds"] < r["mult_adds"] or o["accuracy"] > r["accuracy"])
            for o in scored
        )
        if not dominated:
            front.add(r["model_id"])
    return front


def note_skipped(count: int) -> None:
    """Say on stderr (never on stdout, which may hold --json) how many rows were left out."""
    print(f"note: {count} models row(s) written before model cards are left out; retrain "
          "them to compare them", file=sys.stderr)


def compare_rows(
    storage: str, study: str | None = None, show_all: bool = False,
    on_skipped: Callable[[int], None] | None = note_skipped,
) -> list[dict[str, Any]]:
    """The table: one row per (arch, its size, layout, preset) with the mean over its seeds
    (`over_seeds`) unless `show_all`; ranked by layout then accuracy; `pareto` marks the
    accuracy / mult-adds front of each layout.

    Rows are read from their model cards only; rows written before the card are left out
    and counted to `on_skipped`."""
    from nas.db import DatabaseError, open_database

    try:
        db = open_database(storage, create=False)
    except DatabaseError as exc:
        raise BadInput(str(exc)) from None
    try:
        if study is not None and db.search(study) is None:
            names = ", ".join(s.name for s in db.searches()) or "none yet"
            raise BadInput(f"no study {study!r} in {db.display_url} (studies: {names})")
        records = db.models()
    finally:
        db.close()
    carded = [(r, _row(r)) for r in records]
    rows = [row for _, row in carded if row is not None]
    if on_skipped is not None and len(rows) < len(carded):
        on_skipped(len(carded) - len(rows))
    if study is not None:
        rows = [r for r in rows if r["kind"] != "searched" or r["arch"].startswith(f"{study}:")]
    if not show_all:
        rows = over_seeds(rows)
    for layout in {r["layout"] for r in rows}:
        front = pareto_front([r for r in rows if r["layout"] == layout])
        for r in rows:
            if r["layout"] == layout:
                r["pareto"] = r["model_id"] in front
    rows.sort(key=lambda r: (r["layout"] != "cifar", r["layout"],
                             -(r["accuracy"] if r["accuracy"] is not None else -1.0),
                             r["model_id"]))
    return rows


def _human(n: float | None) -> str:
    if n is None:
        return "-"
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3g}{unit}"
    return f"{n:.3g}"


def _lr_text(row: dict[str, Any]) -> str:
    """The peak lr; `picked of K` when it was chosen from a grid of K on validation."""
    if row.get("lr") is None:
        return "-"
    pick = row.get("lr_pick")
    return f"{row['lr']:g}" + (f" (picked of {len(pick['grid'])})" if pick else "")


def _accuracy_text(row: dict[str, Any]) -> str:
    """`68.50%`, or `68.10 ± 0.42% (2 seeds)` for the mean over seeds."""
    if row["accuracy"] is None:
        return "-"
    if row.get("accuracy_sd") is None:
        return f"{100 * row['accuracy']:.2f}%"
    return (f"{100 * row['accuracy']:.2f} ± {100 * row['accuracy_sd']:.2f}% "
            f"({len(row['seeds'])} seeds)")


def label(row: dict[str, Any]) -> str:
    """The model's name, with the stem stride where a cell network departs from the paper's."""
    return f"{row['arch']} (stem stride 2)" if row.get("stem_stride") == 2 else row["arch"]


def render_table(rows: Sequence[dict[str, Any]]) -> Any:
    """A rich table, one line per model, Pareto members starred."""
    from rich.table import Table

    table = Table("arch", "kind", "layout", "preset", "params", "mult-adds", "accuracy",
                  "top-5", "epochs", "train s", "img/s", "lr", "front",
                  title="trained models (accuracy: CIFAR-10 test / ImageNet-layout val top-1)")
    for r in rows:
        table.add_row(
            label(r), r["kind"], r["layout"], r["preset"] or "-", _human(r["params"]),
            _human(r["mult_adds"]),
            _accuracy_text(r),
            "-" if r["top5"] is None else f"{100 * r['top5']:.2f}%",
            "-" if r["epochs"] is None else str(r["epochs"]),
            "-" if r["train_seconds"] is None else f"{r['train_seconds']:.0f}",
            "-" if r["images_per_s"] is None else f"{r['images_per_s']:.0f}",
            _lr_text(r),
            "*" if r.get("pareto") else "",
        )
    return table


def plot_compare(rows: Sequence[dict[str, Any]], path: Path | str, title: str | None = None) \
        -> Path:
    """Accuracy vs mult-adds (log x), marker area ~ params, Pareto front drawn, names shown;
    one panel per layout, since CIFAR and ImageNet accuracies are not comparable."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter, LogLocator

    path = Path(path)
    if path.suffix.lower() not in (".png", ".svg", ".pdf"):
        raise BadInput(f"--plot {path}: use a .png, .svg or .pdf file name")
    usable = [r for r in rows if r["accuracy"] is not None and r["mult_adds"]]
    if not usable:
        raise BadInput("no trained model with accuracy and mult-adds to plot; "
                       "run `nas train`, `nas baselines` or `nas transfer` first")
    layouts = [lay for lay in ("cifar", "imagenet") if any(r["layout"] == lay for r in usable)]
    max_params = max((r["params"] or 0) for r in usable) or 1
    fig, axes = plt.subplots(1, len(layouts), figsize=(7.5 * len(layouts) + 1.8, 6),
                             squeeze=False)

    def area(params: float | None) -> float:
        return 40 + 900 * ((params or 0) / max_params) ** 0.5

    for ax, layout in zip(axes[0], layouts, strict=True):
        mine = [r for r in usable if r["layout"] == layout]
        for kind in KINDS:
            for on_front in (False, True):
                pts = [r for r in mine if r["kind"] == kind and bool(r.get("pareto")) == on_front]
                if pts:
                    ax.scatter([r["mult_adds"] for r in pts],
                               [100 * r["accuracy"] for r in pts],
                               s=[area(r["params"]) for r in pts], c=KIND_COLORS[kind],
                               alpha=0.6, edgecolors="black" if on_front else "white",
                               linewidths=2.0 if on_front else 0.5, zorder=3)
        front = sorted((r for r in mine if r.get("pareto")), key=lambda r: r["mult_adds"])
        if front:
            ax.plot([r["mult_adds"] for r in front], [100 * r["accuracy"] for r in front],
                    color="black", linestyle="--", linewidth=1.2, drawstyle="steps-post",
                    zorder=2)
        for r in mine:
            ax.annotate(label(r), (r["mult_adds"], 100 * r["accuracy"]),
                        textcoords="offset points", xytext=(6, 5), fontsize=8,
                        fontweight="bold" if r.get("pareto") else "normal")
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: _human(v)))
        ax.xaxis.set_minor_locator(LogLocator(subs=(2.0, 5.0)))
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: _human(v)))
        ax.tick_params(axis="x", which="minor", labelsize=8)
        ax.set_xlabel("mult-adds per image (log scale)")
        ax.set_ylabel("top-1 accuracy (%)")
        ax.set_title(LAYOUT_TITLES[layout])
        ax.grid(True, which="both", alpha=0.3)
        ax.margins(x=0.25, y=0.15)
    handles = [
        Line2D([], [], marker="o", linestyle="", markersize=9, color=KIND_COLORS[k], alpha=0.6,
               label=k) for k in KINDS if any(r["kind"] == k for r in usable)
    ]
    handles.append(Line2D([], [], color="black", linestyle="--", marker="o",
                          markerfacecolor="none", markeredgewidth=2.0,
                          label="Pareto front (ringed)"))
    for p in sorted({max_params, max_params / 10, max_params / 100}, reverse=True):
        handles.append(Line2D([], [], marker="o", linestyle="", color="#bbbbbb",
                              markersize=area(p) ** 0.5, label=f"{_human(p)} params"))
    axes[0][-1].legend(handles=handles, loc="center left", bbox_to_anchor=(1.02, 0.5),
                       fontsize=8, labelspacing=1.8, borderpad=1.2, handlelength=3.5,
                       handletextpad=1.2, title="kind / size")
    fig.suptitle(title or "Searched cells vs published genotypes vs hand-designed baselines")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


__all__ = ["compare_rows", "model_kind", "over_seeds", "pareto_front", "plot_compare",
           "render_table"]
