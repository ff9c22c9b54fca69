"""`nas compare`: the table and the plot, from model rows that real (tiny) training runs wrote
through the store API; the Pareto front; bad input."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from test_data import make_small_cifar
from test_transfer import link_subset

from nas.cli import main
from nas.errors import BadInput
from nas.results.compare import compare_rows, model_kind, pareto_front, plot_compare
from search_spaces import Arch, get_arch, sample_genotype


def test_kinds() -> None:
    assert model_kind("nasnet-a") == "published"
    assert model_kind("darts-v2") == "published"
    assert model_kind("mobilenet-v1") == "baseline"
    assert model_kind("s1:7") == "searched"
    assert model_kind("mycell") == "custom"  # a genotype file: who wrote it is unknown


def test_pareto_front_keeps_only_undominated() -> None:
    rows = [
        {"model_id": 1, "accuracy": 0.90, "mult_adds": 100},
        {"model_id": 2, "accuracy": 0.80, "mult_adds": 200},  # dominated by 1
        {"model_id": 3, "accuracy": 0.95, "mult_adds": 300},
        {"model_id": 4, "accuracy": 0.60, "mult_adds": 10},
        {"model_id": 5, "accuracy": 0.90, "mult_adds": 100},  # ties with 1: both stay
        {"model_id": 6, "accuracy": None, "mult_adds": 5},  # unscored: never on the front
    ]
    assert pareto_front(rows) == {1, 3, 4, 5}


def test_no_database_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["compare", "--storage", f"sqlite:///{tmp_path / 'none.db'}"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "no nas database" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "none.db").exists()


def test_empty_plot_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="no trained model"):
        plot_compare([], tmp_path / "p.png")
    with pytest.raises(BadInput, match=r"\.png"):
        plot_compare([], tmp_path / "p.txt")


def test_compare_reads_only_the_card_and_leaves_out_rows_without_one(
    cifar_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Real (tiny) `nas train` runs, a cell network and a baseline, plus a row written the
    old way with no card: --json has an accuracy for every row, the old row is left out
    with a note on stderr, and nothing in a row comes from outside the card."""
    from nas.db import record_model

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    small = make_small_cifar(cifar_dir, tmp_path / "cifar", train=8, test=4)
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    tiny = ["--preset", "cpu-quick", "--epochs", "1", "--subset", "64", "--max-steps", "1",
            "--batch-size", "32", "--data", str(small), "--out", str(tmp_path / "ck"),
            "--storage", url, "--json"]
    trained = {}
    for ref, size in (("nasnet-a", ["--cells", "1", "--filters", "24"]), ("lenet5", [])):
        assert main(["train", ref, *size, *tiny]) == 0
        trained[ref] = json.loads(capsys.readouterr().out)
    record_model(url, kind="train", arch="vgg16", layout="cifar", config={},
                 metrics={"test_accuracy": 0.5}, test_accuracy=0.5, params=1, mult_adds=1)
    assert main(["compare", "--storage", url, "--json"]) == 0
    captured = capsys.readouterr()
    rows = json.loads(captured.out)
    assert {r["arch"] for r in rows} == {"nasnet-a", "lenet5"}
    assert all(r["accuracy"] is not None for r in rows)
    assert "1 models row(s) written before model cards are left out" in captured.err
    for row in rows:
        run = trained[row["arch"]]
        assert row["accuracy"] == run["test_accuracy"] and row["preset"] == "cpu-quick"
        assert (row["params"], row["mult_adds"]) == (run["params"], run["mult_adds"])
        assert row["train_seconds"] == run["train_seconds"] and row["epochs"] == 1
        assert row["layout"] == "cifar" and row["image_size"] == 32
    by_arch = {r["arch"]: r for r in rows}
    assert (by_arch["nasnet-a"]["cells"], by_arch["nasnet-a"]["filters"]) == (1, 24)
    assert by_arch["lenet5"]["width"] == 1.0 and by_arch["lenet5"]["kind"] == "baseline"


def test_a_cell_at_another_stem_stride_is_its_own_row(
    cifar_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`nas train nasnet-a --stem-stride 2` (the control for a searched stride-2 network) is
    a row of its own, named so, at about a quarter of the mult-adds; a baseline or a stride
    the builder refuses is exit 2 with one line."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    small = make_small_cifar(cifar_dir, tmp_path / "cifar", train=8, test=4)
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    tiny = ["--preset", "cpu-quick", "--epochs", "1", "--subset", "64", "--max-steps", "1",
            "--batch-size", "32", "--data", str(small), "--out", str(tmp_path / "ck"),
            "--storage", url, "--json", "--cells", "1", "--filters", "24"]
    for stride in ("1", "2"):
        assert main(["train", "nasnet-a", "--stem-stride", stride, *tiny]) == 0
        assert json.loads(capsys.readouterr().out)["network"]["stem_stride"] == int(stride)
    assert main(["compare", "--storage", url, "--json"]) == 0
    rows = {r["stem_stride"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == {1, 2} and rows[1]["params"] == rows[2]["params"]
    assert 0.2 < rows[2]["mult_adds"] / rows[1]["mult_adds"] < 0.3
    assert main(["compare", "--storage", url]) == 0
    assert "nasnet-a (stem stride 2)" in capsys.readouterr().out
    for ref, stride, message in (("lenet5", "2", "--stem-stride apply to cell networks"),
                                 ("nasnet-a", "3", "stem stride must be 1 or 2")):
        assert main(["train", ref, "--stem-stride", stride, *tiny]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1


def test_compare_gives_the_mean_over_seeds(
    cifar_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Real tiny runs of one model at seeds 0, 1 and 0 again: one row, the mean of the newest
    run of each seed, their sd and each seed's accuracy, in --json and in the table."""
    import statistics

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    small = make_small_cifar(cifar_dir, tmp_path / "cifar", train=8, test=4)
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    tiny = ["--preset", "cpu-quick", "--epochs", "1", "--subset", "64", "--max-steps", "2",
            "--batch-size", "32", "--data", str(small), "--out", str(tmp_path / "ck"),
            "--storage", url, "--json"]
    runs = []
    for seed in (0, 1, 0):
        assert main(["train", "lenet5", "--seed", str(seed), *tiny]) == 0
        runs.append(json.loads(capsys.readouterr().out))
    assert main(["compare", "--storage", url, "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    newest = [runs[2]["test_accuracy"], runs[1]["test_accuracy"]]  # seed 0's second run wins
    assert row["seeds"] == [0, 1] and row["accuracy_per_seed"] == newest
    assert row["accuracy"] == pytest.approx(statistics.mean(newest))
    assert row["accuracy_sd"] == pytest.approx(statistics.stdev(newest))
    every = compare_rows(url, show_all=True)
    assert len(every) == 3 and all("seeds" not in r for r in every)
    assert main(["compare", "--storage", url]) == 0
    assert "(2 seeds)" in capsys.readouterr().out


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, ray_cluster: None) -> dict[str, Any]:
    """Three real trainings through Ray Train, one of each kind, recorded in one database."""
    from nas.training.transfer import plan_transfer, run_transfer

    base = tmp_path_factory.mktemp("compare")
    data = link_subset(base / "imagenette", train=8, val=4)
    url = f"sqlite:///{base / 'nas.db'}"
    searched = Arch("mycell", "genotype", sample_genotype(random.Random(5)))
    runs = [
        (searched, {"cells": 1, "filters": 32}),
        (get_arch("nasnet-a"), {"cells": 1, "filters": 48}),
        (get_arch("mobilenet-v1"), {"width": 0.25}),
    ]
    rows = []
    for arch, size in runs:
        plan = plan_transfer(arch, data, preset="cpu-transfer", image_size=32, epochs=1,
                             batch_size=8, workers=1, **size)
        rows.append(run_transfer(plan, url, out=base / "runs", cache_dir=base / "cache"))
    return {"url": url, "rows": rows, "base": base}


@pytest.mark.slow
def test_compare_table_and_plot_from_real_runs(
    trained: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    url, base = trained["url"], trained["base"]
    rows = compare_rows(url)
    assert {r["arch"]: r["kind"] for r in rows} == {
        "mycell": "custom", "nasnet-a": "published", "mobilenet-v1": "baseline"}
    by_arch = {r["arch"]: r for r in rows}
    for run in trained["rows"]:
        row = by_arch[run["arch"]]
        assert row["accuracy"] == run["top1"] and row["top5"] == run["top5"]
        assert row["params"] == run["params"] and row["mult_adds"] == run["mult_adds"]
        assert row["layout"] == "imagenet" and row["preset"] == "cpu-transfer"
        assert row["train_seconds"] == run["train_seconds"] and row["images_per_s"] > 0
    assert any(r["pareto"] for r in rows)
    front = pareto_front(rows)
    assert {r["model_id"] for r in rows if r["pareto"]} == front
    accuracies = [r["accuracy"] for r in rows]
    assert accuracies == sorted(accuracies, reverse=True)

    plot = base / "compare.png"
    code = main(["compare", "--storage", url, "--plot", str(plot), "--json"])
    out = capsys.readouterr().out
    assert code == 0
    assert [r["arch"] for r in json.loads(out)] == [r["arch"] for r in rows]
    assert plot.stat().st_size > 10_000 and plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    code = main(["compare", "--storage", url])
    table = capsys.readouterr().out
    assert code == 0 and all(name in table for name in by_arch) and "published" in table


@pytest.mark.slow
def test_newest_row_per_model_unless_all(trained: dict[str, Any]) -> None:
    from nas.db import record_model

    url = trained["url"]
    from workers.checkpoint import read_card

    first = next(r for r in trained["rows"] if r["arch"] == "nasnet-a")
    # the same model trained again under the same preset: the table shows the newer row
    again = record_model(url, kind="transfer", arch="nasnet-a", layout="imagenet",
                         config={"train": {"preset": "cpu-transfer"}},
                         metrics={"top1": first["top1"], "top5": first["top5"]},
                         test_accuracy=first["top1"], params=first["params"],
                         mult_adds=first["mult_adds"], checkpoint=first["checkpoint"],
                         card=read_card(Path(first["checkpoint"])).to_dict())
    shown = [r["model_id"] for r in compare_rows(url) if r["arch"] == "nasnet-a"]
    assert shown == [again.model_id]
    every = [r["model_id"] for r in compare_rows(url, show_all=True) if r["arch"] == "nasnet-a"]
    assert sorted(every) == sorted([first["model_id"], again.model_id])


@pytest.mark.slow
def test_unknown_study_is_bad_input(trained: dict[str, Any]) -> None:
    with pytest.raises(BadInput, match="no study 'nope'"):
        compare_rows(trained["url"], study="nope")
