"""The search's progress: today's plain lines without a terminal, and the live view of the
trials running now (rendered by rich into a recording console that acts as a terminal)."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from faults.faultkit import write_config
from rich.console import Console

from nas.search.monitor import LiveView, PlainView, echo, progress_line, progress_view


class Clock:
    """Seconds that move only when the test says so, so the rendering is exact."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def terminal() -> Console:
    return Console(file=io.StringIO(), record=True, force_terminal=True, width=100)


def text_of(view: LiveView) -> str:
    console = Console(file=io.StringIO(), record=True, width=100)
    console.print(view)
    return console.export_text()


def test_plain_view_prints_only_the_lines_and_nothing_while_trials_run() -> None:
    lines: list[str] = []
    line = progress_line(3, "COMPLETE", 0.5, 12_000, 3_400_000, 9.5, 0.5, 3)
    with PlainView(lines.append) as view:
        view.start(3)
        view.update(3, 1, 0.25)
        view.finish(3, (0.5, 3))
        view.line(line)
    assert lines == [line]
    assert line == ("trial    3  COMPLETE  acc 0.5000  params  12.0K  mult-adds   3.4M     9.5s"
                    "  best 0.5000 (#3)")


def test_without_a_terminal_or_with_json_the_lines_stay_plain(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.delenv("TTY_INTERACTIVE", raising=False)
    assert type(progress_view(live=True)) is PlainView  # pytest's stderr is not a terminal
    monkeypatch.setenv("FORCE_COLOR", "1")  # rich's own switch: treat stderr as a terminal
    assert type(progress_view(live=False)) is PlainView  # --json
    assert type(progress_view(live=True, line=print)) is PlainView  # a caller's own printer
    assert type(progress_view(live=True, epochs=3)) is LiveView
    view = progress_view(live=False)
    view.line("trial    0  COMPLETE")
    assert capsys.readouterr().err == "trial    0  COMPLETE\n"
    echo("same as echo")
    assert capsys.readouterr().err == "same as echo\n"


def test_live_view_shows_running_trials_and_the_best_so_far() -> None:
    clock = Clock()
    view = LiveView(terminal(), epochs=3, clock=clock)
    assert text_of(view).strip() == "0 running · no finished trial yet"
    view.start(0)
    clock.now += 5
    view.start(1)
    clock.now += 7
    view.update(0, 2, 0.4375)
    shown = text_of(view)
    assert shown.splitlines()[0] == "2 running · no finished trial yet"
    rows = [line.split() for line in shown.splitlines()[1:]]
    assert rows == [["trial", "epoch", "seconds", "val", "acc"],
                    ["0", "2/3", "12s", "0.4375"],
                    ["1", "-", "7s", "-"]]
    view.finish(0, (0.5, 0))
    clock.now += 1
    rows = [line.split() for line in text_of(view).splitlines()]
    assert rows[0] == ["1", "running", "·", "best", "0.5000", "(#0)"]
    assert rows[2:] == [["1", "-", "8s", "-"]]
    view.update(7, 1, 0.1)  # a report for a trial that is not running changes nothing
    assert "7" not in [r[0] for r in rows[2:]]


def test_live_view_lines_print_as_text_while_it_runs() -> None:
    """A finished-trial line keeps its bracketed note ("[bold]" is not taken as markup)."""
    console = terminal()
    line = progress_line(0, "PRUNED", 0.5, 1000, 2000, 1.0, None, None, note="bold")
    assert line.endswith("  [bold]")
    with LiveView(console, epochs=1, clock=Clock()) as view:
        view.start(0)
        view.finish(0, None)
        view.line(line)
    assert line in console.export_text().splitlines()


def test_a_search_on_a_terminal_shows_the_running_trial(
    ray_cluster: None, cifar_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The real loop drives the view: a 1-trial search with stderr taken as a terminal shows
    the trial while it runs, then its finished line and the best so far."""
    from nas.search.config import make_config
    from nas.search.driver import run_search

    monkeypatch.setenv("FORCE_COLOR", "1")
    config = make_config(write_config(tmp_path / "tiny.json"), study="live", trials=1,
                         preset="cpu-quick", pruner="none", sampler="random",
                         data=str(cifar_dir))
    run_search(config, f"sqlite:///{tmp_path / 'nas.db'}", live=True)
    err = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", capsys.readouterr().err)  # colours, cursor
    assert "1 running · no finished trial yet" in err
    assert re.search(r"trial    0  COMPLETE  acc \d\.\d{4}", err)
    assert re.search(r"0 running · best \d\.\d{4} \(#0\)", err)
