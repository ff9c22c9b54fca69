"""`nas train` and `nas bench train` through the CLI on a small real CIFAR-10 subset: the
--json contract, the checkpoint round trip, the models row, and bad input (exit 2, one
line, no half-written checkpoint)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from test_data import make_small_cifar

from nas.cli import main
from nas.db import open_database
from search_spaces import get_arch
from workers import CARD_VERSION, ModelCard
from workers.augment import MEAN, STD
from workers.checkpoint import load_checkpoint
from workers.data import CLASSES, load_cifar10
from workers.train import evaluate

TRAIN_KEYS = {"arch", "test_accuracy", "params", "mult_adds", "epochs", "train_seconds",
              "images_per_s", "checkpoint"}
TINY = ["--preset", "cpu-quick", "--cells", "1", "--filters", "24", "--epochs", "1",
        "--subset", "128", "--max-steps", "1", "--seed", "3"]


@pytest.fixture(scope="module")
def small(cifar_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_small_cifar(cifar_dir, tmp_path_factory.mktemp("cifar-small"))


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "xdg"))


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_train_writes_a_checkpoint_that_reloads_and_records_the_model(
        small: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = f"sqlite:///{tmp_path / 'nas.db'}"
    code, out, err = run(capsys, "train", "nasnet-a", *TINY, "--data", str(small),
                         "--out", str(tmp_path / "ck"), "--storage", db, "--json")
    assert code == 0, err
    row = json.loads(out)
    assert set(row) >= TRAIN_KEYS
    assert row["arch"] == "nasnet-a" and row["epochs"] == 1 and row["stopped"] == "max steps"
    assert 0.0 <= row["test_accuracy"] <= 1.0

    # The checkpoint's model card says enough to rebuild the network and score it again.
    state, card = load_checkpoint(Path(row["checkpoint"]))
    assert card.version == CARD_VERSION and card.size == "1@24"
    assert (card.architecture.cells, card.architecture.filters) == (1, 24)
    assert card.architecture.genotype == get_arch("nasnet-a").genotype.to_dict()
    assert card.architecture.key == get_arch("nasnet-a").genotype.key()
    assert card.recipe.seed == 3 and card.recipe.preset == "cpu-quick"
    assert card.recipe.changed["max_steps"] == 1 and card.recipe.changed["subset"] == 128
    assert (card.cost.params, card.cost.mult_adds) == (row["params"], row["mult_adds"])
    assert card.metrics.accuracy == row["test_accuracy"] and card.metrics.split == "test"
    assert card.metrics.train_seconds == row["train_seconds"] and card.metrics.epochs == 1
    assert card.input.mean == MEAN and card.input.std == STD and card.input.image_size == 32
    assert card.input.classes == CLASSES and card.input.num_classes == 10
    assert card.provenance.command == "train" and card.provenance.torch_version == \
        torch.__version__
    assert card.provenance.data_fingerprint == load_cifar10(small).fingerprint
    beside = Path(row["checkpoint"]).with_suffix(".json")
    assert ModelCard.from_json(beside.read_text()) == card
    model = get_arch("nasnet-a").build(**card.architecture.settings)
    model.load_state_dict(state, strict=True)
    assert sum(p.numel() for p in model.parameters()) >= row["params"]
    test = load_cifar10(small).test
    assert evaluate(model, test) == pytest.approx(row["test_accuracy"], abs=1e-6)
    assert not list((tmp_path / "ck").glob(".*.tmp"))

    # ... and the run is a row in the models table that `nas compare` reads.
    store = open_database(db, create=False)
    try:
        models = store.models()
    finally:
        store.close()
    assert [(m.kind, m.arch, m.checkpoint) for m in models] == [
        ("train", "nasnet-a", row["checkpoint"])]
    assert models[0].test_accuracy == pytest.approx(row["test_accuracy"])
    assert models[0].key == get_arch("nasnet-a").genotype.key()
    assert ModelCard.from_dict(models[0].card) == card


def test_train_a_baseline_is_deterministic_for_a_seed(
        small: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["train", "resnet18", "--preset", "cpu-quick", "--epochs", "1", "--subset", "64",
            "--max-steps", "1", "--seed", "5", "--batch-size", "32", "--data", str(small),
            "--storage", f"sqlite:///{tmp_path / 'nas.db'}", "--json"]
    rows = []
    for i in range(2):
        code, out, err = run(capsys, *args, "--out", str(tmp_path / f"ck{i}"))
        assert code == 0, err
        rows.append(json.loads(out))
    assert rows[0]["kind"] == "baseline" and rows[0]["test_accuracy"] == rows[1]["test_accuracy"]
    a, card = load_checkpoint(Path(rows[0]["checkpoint"]))
    b, _ = load_checkpoint(Path(rows[1]["checkpoint"]))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert card.architecture.kind == "baseline" and card.architecture.genotype is None
    assert card.architecture.width == 1.0 and card.size == "width 1"


@pytest.mark.parametrize(("args", "message"), [
    (["--epochs", "0"], "--epochs must be at least 1"),
    (["--subset", "16", "--batch-size", "32"], "batch size 32 is larger than the 16"),
    (["--preset", "tpu-huge"], "unknown preset"),
    (["--cells", "-1"], "cells"),
    (["--layout", "imagenet"], "--layout"),
])
def test_bad_input_exits_2_with_one_line_and_no_checkpoint(
        small: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str],
        message: str) -> None:
    base = ["--preset", "cpu-quick", "--cells", "1", "--filters", "24"]
    code, out, err = run(capsys, "train", "nasnet-a", *base, *args, "--data", str(small),
                         "--out", str(tmp_path / "ck"),
                         "--storage", f"sqlite:///{tmp_path / 'nas.db'}")
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and message in err, err
    assert not (tmp_path / "ck").exists()


def test_bad_data_directories_exit_2(tmp_path: Path, small: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "wrong" / "images").mkdir(parents=True)
    for data in (tmp_path / "empty", tmp_path / "wrong"):
        code, _out, err = run(capsys, "train", "nasnet-a", *TINY, "--data", str(data),
                             "--out", str(tmp_path / "ck"))
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        assert "train/<class>" in err and "cifar-10-batches-py" in err, err
    assert not (tmp_path / "ck").exists()


def test_bench_train_reports_both_rates(small: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "bench", "train", "nasnet-a", "--cells", "1", "--filters",
                         "24", "--batch-size", "32", "--steps", "1", "--repeats", "1",
                         "--data", str(small), "--json")
    assert code == 0, err
    row = json.loads(out)
    assert row["images_per_s"] > 0 and row["model_only_images_per_s"] > 0
    assert row["ratio"] == pytest.approx(row["images_per_s"] / row["model_only_images_per_s"])
    code, out, err = run(capsys, "bench", "train", "nasnet-a", "--steps", "0",
                         "--data", str(small))
    assert code == 2 and "--steps" in err
