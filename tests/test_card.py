"""The model card: round trip, validation, a newer version refused, old checkpoints through
the one converter (or refused), and a card that does not match its weights refused by
`nas export` (exit 2, one line)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file
from test_export import bad_input

from nas.cli import main
from search_spaces import count_mult_adds, count_params, get_arch
from workers import CARD_VERSION, CardError, ModelCard
from workers.card import from_description, layout_normalization, make_card
from workers.checkpoint import CheckpointError, load_checkpoint, read_card, save_checkpoint
from workers.data import CLASSES

SMALL = {"layout": "cifar", "cells": 1, "filters": 24, "image_size": 32, "num_classes": 10}


def card_for(settings: dict[str, Any], **changes: Any) -> ModelCard:
    arch = get_arch("nasnet-a")
    assert arch.genotype is not None
    with torch.device("meta"):
        net = arch.build(**settings)
    fields: dict[str, Any] = {
        "ref": "nasnet-a", "kind": "genotype", "genotype": arch.genotype.to_dict(),
        "key": arch.genotype.key(), "settings": settings, "classes": CLASSES,
        "preset": "cpu-quick", "train": {"lr": 0.05, "seed": 2, "epochs": 1, "batch_size": 16,
                                         "cutout": 0, "loss": float("nan")},
        "preset_train": {"lr": 0.05, "seed": 0, "epochs": 3, "batch_size": 16, "cutout": 0},
        "accuracy": 0.25, "split": "test", "top5": None, "train_seconds": 1.5,
        "images_per_s": 100.0, "epochs": 1, "params": count_params(net),
        "mult_adds": count_mult_adds(net, settings["image_size"]), "command": "train",
        "data_fingerprint": "abc123",
    }
    return make_card(**{**fields, **changes})


def old_description(settings: dict[str, Any]) -> dict[str, Any]:
    """What `nas train` wrote into a checkpoint's "nas" metadata before the card."""
    card = card_for(settings, classes=None)
    return {
        "arch": "nasnet-a", "kind": "genotype", "genotype": card.architecture.genotype,
        "network": settings, "preset": "cpu-quick",
        "train": {"lr": 0.05, "seed": 2, "epochs": 1, "batch_size": 16},
        "metrics": {"test_accuracy": 0.25, "train_seconds": 1.5, "images_per_s": 100.0,
                    "epochs": [{"epoch": 1}], "data_fingerprint": "abc123"},
        "params": card.cost.params, "mult_adds": card.cost.mult_adds, "nas_version": "0.1.0",
        "created": "2026-11-01T00:00:00+00:00",
    }


def old_checkpoint(path: Path, description: dict[str, Any] | None) -> Path:
    net = get_arch("nasnet-a").build(**SMALL)
    metadata = None if description is None else {"nas": json.dumps(description)}
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path),
              metadata=metadata)
    return path


def test_round_trip_is_json_safe_and_exact() -> None:
    card = card_for(SMALL)
    text = card.to_json()
    assert "NaN" not in text  # PostgreSQL's JSON refuses NaN: it becomes null
    assert ModelCard.from_json(text) == card == ModelCard.from_dict(card.to_dict())
    assert card.version == CARD_VERSION == 1
    assert card.recipe.changed == {"seed": 2, "epochs": 1, "loss": None}
    assert card.input.mean == layout_normalization("cifar")[0] and card.input.channels == 3
    assert card.input.classes == CLASSES and card.size == "1@24"
    imagenet = card_for({**SMALL, "layout": "imagenet"}, classes=None)
    assert imagenet.input.mean == pytest.approx((123.675, 116.28, 103.53))
    assert imagenet.input.std == pytest.approx((58.395, 57.12, 57.375))


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d.update(version=CARD_VERSION + 1), f"version {CARD_VERSION + 1} is newer"),
    (lambda d: d.pop("version"), "no valid version"),
    (lambda d: d["metrics"].pop("accuracy"), "no card.metrics.accuracy"),
    (lambda d: d["cost"].update(params="many"), "card.cost.params must be int"),
    (lambda d: d["input"].update(mean=[0.5, 0.5]), "one value per channel"),
    (lambda d: d["input"].update(std=[0.0, 1.0, 1.0]), "0..255 scale"),
    (lambda d: d["input"].update(classes=["cat"]), "num_classes"),
    (lambda d: d.update(architecture=[]), "card.architecture must be an object"),
])
def test_invalid_cards_are_refused_with_one_line(change: Any, message: str) -> None:
    data = card_for(SMALL).to_dict()
    change(data)
    with pytest.raises(CardError, match=message) as info:
        ModelCard.from_dict(data)
    assert "\n" not in str(info.value)


def test_checkpoint_carries_the_card_in_metadata_and_beside_it(tmp_path: Path) -> None:
    card = card_for(SMALL)
    net = get_arch("nasnet-a").build(**SMALL)
    path = save_checkpoint(tmp_path / "m.safetensors", net, card)
    assert read_card(path) == card
    assert ModelCard.from_json(path.with_suffix(".json").read_text()) == card
    state, loaded = load_checkpoint(path)
    assert loaded == card and state.keys() == net.state_dict().keys()


def test_old_checkpoint_goes_through_the_one_converter(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = old_checkpoint(tmp_path / "old.safetensors", old_description(SMALL))
    card = read_card(path)
    assert card.provenance.command == "converted" and card.architecture.settings == SMALL
    assert card.metrics.accuracy == 0.25 and card.metrics.epochs == 1
    assert card.input.mean == layout_normalization("cifar")[0] and card.input.classes == CLASSES
    assert card.provenance.data_fingerprint == "abc123"
    assert main(["export", "nasnet-a", "--weights", str(path), "--out", str(tmp_path / "x"),
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["cells"] == 1
    # an old transfer checkpoint: top-1 on val/, its class names in "data"
    transfer = {**old_description({**SMALL, "layout": "imagenet", "num_classes": 2}),
                "metrics": {"top1": 0.5, "top5": 1.0},
                "data": {"classes": ["tench", "dog"], "fingerprint": "f00"}}
    converted = from_description(transfer)
    assert converted.metrics.split == "val" and converted.metrics.top5 == 1.0
    assert converted.input.classes == ("tench", "dog")
    assert converted.input.mean == layout_normalization("imagenet")[0]


def test_old_or_unknown_checkpoints_without_what_a_card_needs_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lacking = old_description(SMALL)
    del lacking["mult_adds"], lacking["metrics"]["test_accuracy"]
    path = old_checkpoint(tmp_path / "lacking.safetensors", lacking)
    with pytest.raises(CheckpointError, match="lacks accuracy, mult_adds; retrain"):
        read_card(path)
    out = tmp_path / "x"
    err = bad_input(["export", "nasnet-a", "--weights", str(path), "--out", str(out)], capsys)
    assert "predates model cards" in err and "retrain" in err
    bare = old_checkpoint(tmp_path / "bare.safetensors", None)
    err = bad_input(["export", "nasnet-a", "--weights", str(bare), "--out", str(out)], capsys)
    assert "has no model card" in err
    assert not out.exists()


def test_newer_card_and_card_that_does_not_match_the_weights_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    net = get_arch("nasnet-a").build(**SMALL)
    state = {k: v.contiguous() for k, v in net.state_dict().items()}
    newer = {**card_for(SMALL).to_dict(), "version": CARD_VERSION + 1}
    path = tmp_path / "newer.safetensors"
    save_file(state, str(path), metadata={"nas_card": json.dumps(newer)})
    out = tmp_path / "x"
    err = bad_input(["export", "nasnet-a", "--weights", str(path), "--out", str(out)], capsys)
    assert f"version {CARD_VERSION + 1} is newer" in err and "upgrade nas" in err
    # a card that says 2@24 over the tensors of a 1@24 network
    card = card_for(SMALL)
    wrong = dataclasses.replace(card, architecture=dataclasses.replace(
        card.architecture, cells=2, settings={**SMALL, "cells": 2}))
    path = save_checkpoint(tmp_path / "wrong.safetensors", net, wrong)
    err = bad_input(["export", "nasnet-a", "--weights", str(path), "--out", str(out)], capsys)
    assert "do not fit" in err and "model card" in err and "missing tensors" in err
    assert not out.exists()


def test_models_row_stores_the_card(db_url: str) -> None:
    """The card round-trips through models.card_json on SQLite and PostgreSQL (whose JSON
    refuses NaN, which the card never holds)."""
    from nas.db import open_database, record_model

    card = card_for(SMALL)
    record = record_model(db_url, kind="train", arch="nasnet-a", layout="cifar", config={},
                          metrics={}, test_accuracy=card.metrics.accuracy,
                          card=card.to_dict())
    assert record.card == card.to_dict()
    db = open_database(db_url, create=False)
    try:
        (stored,) = db.models()
    finally:
        db.close()
    assert ModelCard.from_dict(stored.card) == card


def test_transfer_card_from_a_real_plan(tmp_path: Path) -> None:
    """`nas transfer`'s card from a real plan over real Imagenette files and the metrics
    rank 0 reports (the Ray Train run itself is the slow test in test_transfer.py)."""
    from test_transfer import link_subset

    from nas.training.transfer import plan_transfer, transfer_card
    from search_spaces import count_cost

    data = link_subset(tmp_path / "imagenette", train=4, val=1)
    plan = plan_transfer(get_arch("mobilenet-v1"), data, preset="cpu-transfer", image_size=32,
                         epochs=1, batch_size=8, width=0.25, seed=4)
    with torch.device("meta"):
        cost = count_cost(plan.arch.build(**plan.settings), 32)
    metrics = {"top1": 0.5, "top5": 1.0, "train_seconds": 3.14159, "images_per_s": 12.34,
               "val_images": 4, "workers": [{"rank": 0}], "train_loss": float("nan")}
    card = transfer_card(plan, metrics, cost, "f1f2", threads=2, command="baseline")
    assert card.architecture.kind == "baseline" and card.architecture.width == 0.25
    assert card.architecture.layout == "imagenet" and card.size == "width 0.25"
    assert card.input.classes == plan.classes and card.input.num_classes == len(plan.classes)
    assert card.input.mean == layout_normalization("imagenet")[0] and card.input.image_size == 32
    assert card.metrics.split == "val" and (card.metrics.accuracy, card.metrics.top5) == (0.5, 1)
    assert card.metrics.train_seconds == 3.14 and card.metrics.extra["train_loss"] is None
    assert card.recipe.preset == "cpu-transfer" and card.recipe.seed == 4
    assert card.recipe.changed["epochs"] == 1 and "lr" not in card.recipe.changed
    assert card.recipe.settings["stored_size"] == plan.stored_size
    assert card.cost.params == cost.params and card.provenance.data_fingerprint == "f1f2"
    assert card.provenance.command == "baseline" and card.provenance.data["val_images"] == 4
    assert ModelCard.from_json(card.to_json()) == card
