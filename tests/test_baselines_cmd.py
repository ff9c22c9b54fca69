"""`nas baselines`: the one width rule, the budget a chosen model gets, real training on
CIFAR-10 (and Imagenette) recorded in the models table, bad input."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from nas.cli import main
from nas.errors import BadInput
from nas.training.baselines import (
    DEFAULT_BASELINES,
    WIDTHS,
    WidthRule,
    meta_mult_adds,
    parse_archs,
    parse_width_rule,
    resolve_widths,
)
from search_spaces import BASELINES, get_arch


def test_parse_width_rules() -> None:
    assert parse_width_rule(None) == WidthRule("preset")
    assert parse_width_rule("full") == WidthRule("full", 1.0)
    assert parse_width_rule("0.25") == WidthRule("fixed", 0.25)
    assert parse_width_rule("max-mult-adds=50M") == WidthRule("max-mult-adds", 50e6)
    assert parse_width_rule("max-mult-adds=1200000") == WidthRule("max-mult-adds", 1.2e6)
    assert parse_width_rule("match=nasnet-a") == WidthRule("match", None, "nasnet-a")
    for bad in ("banana", "0", "5", "max-mult-adds=lots", "max-mult-adds=-3", "match="):
        with pytest.raises(BadInput):
            parse_width_rule(bad)


def test_parse_archs() -> None:
    assert parse_archs(None) == list(DEFAULT_BASELINES)
    assert parse_archs("all") == list(BASELINES)
    assert parse_archs("resnet18, lenet5,resnet18") == ["resnet18", "lenet5"]
    with pytest.raises(BadInput, match="nasnet-a"):
        parse_archs("resnet18,nasnet-a")  # a genotype is not a baseline


def test_fixed_rule_is_the_same_for_every_baseline() -> None:
    names = ["lenet5", "resnet18", "mobilenet-v2"]
    widths, text = resolve_widths(parse_width_rule("0.5"), names, "cifar", 32, 10, 1.0)
    assert widths == dict.fromkeys(names, 0.5)
    assert text.startswith("width rule: every baseline at width 0.5")
    assert all(f"{n} 0.5" in text for n in names)


def test_match_rule_caps_every_baseline_at_the_chosen_models_mult_adds() -> None:
    names = ["lenet5", "resnet18", "mobilenet-v1", "vgg16"]
    reference = {"cells": 1, "filters": 96}
    nasnet = get_arch("nasnet-a")
    cap = meta_mult_adds(nasnet, **nasnet.resolve(layout="cifar", **reference))
    widths, text = resolve_widths(parse_width_rule("match=nasnet-a"), names, "cifar", 32, 10,
                                  1.0, reference=reference)
    assert f"{cap:,} mult-adds" in text and "nasnet-a" in text
    for name, width in widths.items():
        arch = get_arch(name)
        cost = meta_mult_adds(arch, layout="cifar", image_size=32, num_classes=10, width=width)
        assert cost <= cap or width == WIDTHS[-1]
        wider = [w for w in WIDTHS if w > width]
        if wider and cost <= cap:  # the widest that fits: one step wider does not
            up = meta_mult_adds(arch, layout="cifar", image_size=32, num_classes=10,
                                width=wider[-1])
            assert up > cap
    assert widths["lenet5"] == 1.0  # LeNet-5 is smaller than any cell network


def _exit(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(args)
    return code, capsys.readouterr().err.strip()


def test_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = f"sqlite:///{tmp_path / 'nas.db'}"
    cases = [
        (["baselines", "--arch", "foo"], "--arch takes baselines"),
        (["baselines", "--width-rule", "wide"], "unknown --width-rule"),
        (["baselines", "--preset", "nope"], "unknown preset"),
        (["baselines", "--layout", "imagenet", "--subset", "10"], "--subset applies"),
        (["baselines", "--workers", "2"], "--workers applies to --layout imagenet"),
        (["baselines", "--layout", "imagenet", "--data", str(tmp_path)], "no train/"),
        (["baselines", "--arch", "lenet5", "--data", str(tmp_path / "none"), "--preset",
          "cpu-quick"], "CIFAR-10 directory"),
    ]
    for args, message in cases:
        code, err = _exit([*args, "--storage", db], capsys)
        assert code == 2, (args, err)
        assert message in err and len(err.splitlines()) == 1, (args, err)


def _cifar_dir() -> Path:
    root = Path(__file__).resolve().parents[1]
    path = Path(os.environ.get("NAS_SHARED_DATA") or root.parent / "shared" / "data") / "cifar10"
    if not path.is_dir():
        pytest.skip(f"real CIFAR-10 not found at {path} (set NAS_SHARED_DATA)")
    return path


@pytest.mark.slow
def test_cifar_baselines_train_record_and_compare(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from nas.db import open_database
    from nas.results.compare import compare_rows
    from workers.checkpoint import load_checkpoint

    url = f"sqlite:///{tmp_path / 'nas.db'}"
    code = main(["baselines", "--arch", "lenet5,mobilenet-v2", "--preset", "cpu-quick",
                 "--subset", "512", "--epochs", "1", "--seed", "3", "--width-rule",
                 "match=nasnet-a", "--data", str(_cifar_dir()), "--out", str(tmp_path / "runs"),
                 "--storage", url, "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    rows = json.loads(captured.out)
    assert [r["arch"] for r in rows] == ["lenet5", "mobilenet-v2"]
    assert len({r["width_rule"] for r in rows}) == 1  # one rule, printed with every row
    assert "width rule" in captured.err or "width rule" in rows[0]["width_rule"]
    for row in rows:
        assert {"arch", "test_accuracy", "params", "mult_adds", "epochs", "train_seconds",
                "images_per_s", "checkpoint", "width", "width_rule"} <= set(row)
        assert 0.0 <= row["test_accuracy"] <= 1.0 and row["epochs"] == 1
        state, card = load_checkpoint(Path(row["checkpoint"]))
        model = get_arch(row["arch"]).build(**card.architecture.settings)
        model.load_state_dict(state, strict=True)
        assert card.architecture.width == row["width"] and card.provenance.command == "baseline"
        assert card.recipe.seed == 3 and card.recipe.settings["subset"] == 512
    db = open_database(url, create=False)
    try:
        models = db.models()
    finally:
        db.close()
    assert [(m.kind, m.arch, m.layout) for m in models] == [
        ("baseline", "lenet5", "cifar"), ("baseline", "mobilenet-v2", "cifar")]
    assert all(m.card is not None and m.card["architecture"]["ref"] == m.arch for m in models)
    table = compare_rows(url)
    assert {r["arch"]: r["accuracy"] for r in table} == {
        r["arch"]: r["test_accuracy"] for r in rows}
    assert all(r["kind"] == "baseline" and r["preset"] == "cpu-quick" for r in table)


def test_cpu_compare_gives_every_model_the_same_seconds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --preset on a CPU machine the budget is cpu-compare: time, not epochs. Here
    2 s each (--time-budget) on a 512-image subset with an epoch cap no model reaches in
    2 s: both stop on the clock."""
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    code = main(["baselines", "--arch", "lenet5,mobilenet-v2", "--time-budget", "2",
                 "--epochs", "100000", "--subset", "512",  # an epoch cap the clock beats
                 "--data", str(_cifar_dir()), "--out", str(tmp_path / "runs"),
                 "--storage", url, "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    rows = json.loads(captured.out)
    assert [r["preset"] for r in rows] == ["cpu-compare", "cpu-compare"]
    assert all(r["stopped"] == "time budget" and r["train_seconds"] >= 2.0 for r in rows)
    assert all(0.0 <= r["test_accuracy"] <= 1.0 for r in rows)
    assert "match=nasnet-a" in rows[0]["width_rule"] or "those of nasnet-a" in rows[0][
        "width_rule"]
