"""Monitoring: Ray custom metrics, where Prometheus finds them, progress lines, and
the live terminal view of the trials running now.

The metrics live in the epoch broker actor, the one Ray process that sees every epoch
report and every finished trial, so workers need no metrics code of their own. Ray exports
them in Prometheus format from every node (pull-based: a search never waits for, or fails
on, a Prometheus or Grafana that is not there); Prometheus names them `ray_<name>` for a
gauge and `ray_<name>_total` for a counter, with our tags as labels.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
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
        self.running = Gauge("nas_trials_running",
                             "Trials handed to Ray and not finished (running or waiting).",
                             tag_keys=("study",))
        self.in_flight = 0

    def epoch(self, number: int, row: dict[str, Any]) -> None:
        tags = {"study": self.study, "trial": str(number)}
        self.epochs.inc(1, tags=tags)
        if row.get("val_accuracy") is not None:
            self.val_accuracy.set(float(row["val_accuracy"]), tags=tags)
        if row.get("images_per_s") is not None:
            self.images_per_s.set(float(row["images_per_s"]), tags=tags)

    def trial_started(self) -> None:
        self.in_flight += 1
        self.running.set(self.in_flight, tags={"study": self.study})

    def trial_finished(self, state: str, best: float | None) -> None:
        self.finished.inc(1, tags={"study": self.study, "state": state})
        self.in_flight = max(0, self.in_flight - 1)
        self.running.set(self.in_flight, tags={"study": self.study})
        if best is not None:
            self.best.set(best, tags={"study": self.study})


# -- where the metrics are: the files Ray's head writes under its temp dir -------------------

DEFAULT_RAY_TEMP_DIR = Path("/tmp/ray")


def prometheus_files(session: Path) -> tuple[Path, Path]:
    """Ray's generated prometheus.yml and the service-discovery file it reads (the head's
    list of every node's metrics endpoint, rewritten as nodes join and leave)."""
    return (session / "metrics" / "prometheus" / "prometheus.yml",
            session / "prom_metrics_service_discovery.json")


def scrape_targets(discovery: Path) -> list[str]:
    """host:port of every node's metrics endpoint, as the head last wrote them."""
    try:
        groups = json.loads(discovery.read_text())
    except (OSError, ValueError):
        return []
    return [t for group in groups for t in group.get("targets", [])]


def metrics_line(session: Path | None) -> str:
    """The one line `nas search` prints about where its metrics can be scraped."""
    text = "metrics: every Ray node exports them in Prometheus format"
    if session is not None:
        config, discovery = prometheus_files(session)
        if config.is_file():
            targets = ", ".join(scrape_targets(discovery)) or "none listed yet"
            return (f"{text} ({targets}); scrape them with `prometheus "
                    f"--config.file={config}` (or `nas monitor`); the dashboard's Metrics view "
                    "needs Prometheus and Grafana (README, Watching)")
    return (f"{text}; Ray's scrape config is on the head, under <temp dir>/session_latest/"
            "metrics/prometheus/prometheus.yml (`nas monitor` there prints it)")


def prometheus_config(discovery: Path, scrape_interval_s: float) -> dict[str, Any]:
    """Ray's scrape config with our interval: one job reading the head's discovery file."""
    interval = f"{scrape_interval_s:g}s"
    return {"global": {"scrape_interval": interval, "evaluation_interval": interval},
            "scrape_configs": [{"job_name": "ray",
                                "file_sd_configs": [{"files": [str(discovery)]}]}]}


def write_prometheus_config(path: Path, discovery: Path, scrape_interval_s: float) -> None:
    """Temp file then rename: a Prometheus reloading it never reads half a file."""
    import yaml

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(yaml.safe_dump(prometheus_config(discovery, scrape_interval_s),
                                  sort_keys=False))
    os.replace(tmp, path)


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


# -- the search's progress: plain lines, or a live view on a terminal ----------------------


class PlainView:
    """One line per finished trial and nothing while trials run: what logs, CI and `--json`
    runs get (and what every run printed before the live view existed)."""

    def __init__(self, line: Callable[[str], None] = echo) -> None:
        self._line = line
        self.best: tuple[float, int] | None = None  # (validation accuracy, trial) so far

    def line(self, text: str) -> None:
        """A line that stays: a finished trial, a note from the driver."""
        self._line(text)

    def start(self, number: int) -> None:
        """Trial `number` was sent to a worker."""

    def update(self, number: int, epoch: int, accuracy: float | None) -> None:
        """Trial `number` reported `epoch` (its rung under Hyperband) with this accuracy."""

    def finish(self, number: int, best: tuple[float, int] | None) -> None:
        """Trial `number` ended; `best` is (validation accuracy, trial) so far."""
        self.best = best

    def __enter__(self) -> PlainView:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        return None


@dataclass
class _RunningRow:
    started: float
    epoch: int | None = None
    accuracy: float | None = None


class LiveView(PlainView):
    """A rich Live table of the trials running now (number, epoch, seconds so far, latest
    accuracy) and the best so far, kept under the finished-trial lines; seconds tick on
    their own, so a user sees work happen before the first trial ends."""

    def __init__(self, console: Any, epochs: int | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.console = console
        self.epochs = epochs
        self.clock = clock
        self.rows: dict[int, _RunningRow] = {}
        self._lock = threading.Lock()  # rich refreshes from its own thread
        self._live: Any = None

    def line(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False, soft_wrap=True)

    def start(self, number: int) -> None:
        with self._lock:
            self.rows[number] = _RunningRow(self.clock())

    def update(self, number: int, epoch: int, accuracy: float | None) -> None:
        with self._lock:
            row = self.rows.get(number)
            if row is not None:
                row.epoch, row.accuracy = epoch, accuracy

    def finish(self, number: int, best: tuple[float, int] | None) -> None:
        with self._lock:
            self.rows.pop(number, None)
            self.best = best

    def __rich__(self) -> Any:
        """A headline (how many run, the best so far) over one row per running trial."""
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        with self._lock:
            rows = sorted((n, _RunningRow(r.started, r.epoch, r.accuracy))
                          for n, r in self.rows.items())
            best = self.best
        best_text = f"best {best[0]:.4f} (#{best[1]})" if best else "no finished trial yet"
        headline = Text(f"{len(rows)} running · {best_text}", style="bold")
        if not rows:
            return headline
        table = Table("trial", "epoch", "seconds", "val acc", box=None, padding=(0, 2, 0, 0))
        now = self.clock()
        for number, row in rows:
            epoch = "-" if row.epoch is None else (
                f"{row.epoch}/{self.epochs}" if self.epochs else str(row.epoch))
            acc = "-" if row.accuracy is None else f"{row.accuracy:.4f}"
            table.add_row(str(number), epoch, f"{now - row.started:.0f}s", acc)
        return Group(headline, table)

    def __enter__(self) -> LiveView:
        from rich.live import Live

        self._live = Live(self, console=self.console, refresh_per_second=2, transient=True)
        self._live.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None


def progress_view(live: bool, line: Callable[[str], None] = echo,
                  epochs: int | None = None) -> PlainView:
    """The live view when asked for (`nas search` without --json), progress goes to the
    default stderr and that is a terminal; the plain lines everywhere else."""
    if live and line is echo:
        from rich.console import Console

        console = Console(stderr=True)
        if console.is_terminal:
            return LiveView(console, epochs)
    return PlainView(line)
