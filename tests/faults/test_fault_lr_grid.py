"""Bad lr grids (issue 14): `--lr-grid` on `nas train` and `nas baselines` with a value that
is not a positive finite number, or nothing at all, is exit 2 with one line naming the flag,
before any data is read or anything is written to the database."""

from __future__ import annotations

from pathlib import Path

import pytest
from faultkit import run_bad_input

# (case id, --lr-grid value, a piece of the one-line message)
GRIDS = [
    ("zero", "0,0.1", "positive"),
    ("negative", "0.1,-0.2", "positive"),
    ("nan", "nan", "positive"),
    ("infinite", "0.1,inf", "positive"),
    ("too large", "1e6", "(0, 100]"),
    ("not a number", "0.1,fast", "comma-separated numbers"),
    ("empty", "", "is empty"),
    ("only commas", ",,", "is empty"),
]
COMMANDS = {"train": ["train", "nasnet-a"], "baselines": ["baselines", "--arch", "lenet5"]}


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize(("case", "grid", "message"), GRIDS, ids=[g[0] for g in GRIDS])
def test_bad_lr_grid_is_exit_2_naming_the_flag(
    command: str, case: str, grid: str, message: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    err = run_bad_input([*COMMANDS[command], "--lr-grid", grid], message, tmp_path,
                        tmp_path / "no-data", monkeypatch, capsys)
    assert "--lr-grid" in err


def test_lr_grid_is_refused_at_the_imagenet_layout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    run_bad_input(["baselines", "--layout", "imagenet", "--lr-grid", "0.1,0.2"],
                  "--lr-grid applies to --layout cifar", tmp_path, tmp_path / "no-data",
                  monkeypatch, capsys)
