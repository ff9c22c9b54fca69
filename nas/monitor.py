"""Monitoring: Ray custom metrics (shown in the dashboard's metrics view) and progress lines.

The metrics live in the epoch broker actor, the one Ray process that sees every epoch
report and every finished trial, so workers need no metrics code of their own.
"""

from __future__ import annotations

from typing import Any

import click


class SearchMetrics:
    """Gauges and counters tagged by study (and trial); create inside a Ray process."""

    def __init__(self, study: str) -> None:
        from ray.util.metrics import Counter, Gauge

        self.study = study
        trial_tags = ("study", "trial")
        self.epochs = Counter("nas_epochs_done", "Epochs trained, per trial.",
                              tag_keys=trial_tags)
        self.val_accuracy = Gauge("nas_val_accuracy", "Validation accuracy of the last epoch.",
                                  tag_keys=trial_tags)
        self.images_per_s = Gauge("nas_images_per_s", "Training throughput of the last epoch.",
                                  tag_keys=trial_tags)
        self.finished = Counter("nas_trials_finished", "Finished trials by state.",
                                tag_keys=("study", "state"))
        self.best = Gauge("nas_best_val_accuracy", "Best validation accuracy so far.",
                          tag_keys=("study",))

    def epoch(self, number: int, row: dict[str, Any]) -> None:
        tags = {"study": self.study, "trial": str(number)}
        self.epochs.inc(1, tags=tags)
        if row.get("val_accuracy") is not None:
            self.val_accuracy.set(float(row["val_accuracy"]), tags=tags)
        if row.get("images_per_s") is not None:
            self.images_per_s.set(float(row["images_per_s"]), tags=tags)

    def trial_finished(self, state: str, best: float | None) -> None:
        self.finished.inc(1, tags={"study": self.study, "state": state})
        if best is not None:
            self.best.set(best, tags={"study": self.study})


def human(n: int | float | None) -> str:
    """12_345_678 -> 12.3M: short enough for one progress line."""
    if n is None:
        return "-"
    for unit, size in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.1f}{unit}"
    return f"{n:g}"


def progress_line(number: int, state: str, val_accuracy: float | None, params: int | None,
                  mult_adds: int | None, seconds: float | None, best: float | None,
                  best_number: int | None, note: str | None = None) -> str:
    acc = f"{val_accuracy:.4f}" if val_accuracy is not None else "  -   "
    best_text = f"{best:.4f} (#{best_number})" if best is not None else "-"
    secs = f"{seconds:6.1f}s" if seconds is not None else "      -"
    line = (f"trial {number:>4}  {state:<8}  acc {acc}  params {human(params):>6}  "
            f"mult-adds {human(mult_adds):>6}  {secs}  best {best_text}")
    return f"{line}  [{note.splitlines()[0]}]" if note else line


def echo(line: str) -> None:
    """Progress goes to stderr: stdout is kept for the one --json document."""
    click.echo(line, err=True)
