"""The lr pick of the comparison recipe on a small real CIFAR-10 subset: it trains on the
training split, scores on the validation split and never reads the test split; `nas train`
records the pick in the model card and the models row, and `nas compare` shows it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
import torch
from test_data import make_small_cifar

from nas.db import open_database
from nas.results.compare import compare_rows
from nas.training.train import run_train
from search_spaces import get_arch
from workers import ModelCard
from workers.data import Cifar10, load_cifar10
from workers.presets import get_preset
from workers.recipe import RecipeError, check_lr_grid, parse_lr_grid, pick_lr, short_run
from workers.source import Split
from workers.train import TrainConfig

FAST = TrainConfig(epochs=1, batch_size=32, lr=0.1, max_steps=4, channels_last=False,
                   bf16=False, threads=2, eval_batch_size=100, warmup_epochs=0.0)


class SplitGuardError(AssertionError):
    """Raised when something reads the test split while it is guarded."""


@dataclass
class GuardedCifar:
    """A real CIFAR-10 subset whose test split counts its reads and, while `guard` is set,
    refuses them: what the lr pick is given must not reach the test images."""

    data: Cifar10
    guard: bool = True
    test_reads: int = 0
    reads: list[str] = field(default_factory=list)

    @property
    def train(self) -> Split:
        self.reads.append("train")
        return self.data.train

    @property
    def val(self) -> Split:
        self.reads.append("val")
        return self.data.val

    @property
    def train_full(self) -> Split:
        self.reads.append("train_full")
        return self.data.train_full

    @property
    def test(self) -> Split:
        self.test_reads += 1
        if self.guard:
            raise SplitGuardError("the test split was read")
        return self.data.test

    fingerprint = property(lambda self: self.data.fingerprint)
    classes = property(lambda self: self.data.classes)


@pytest.fixture(scope="module")
def data(cifar_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Cifar10:
    root = make_small_cifar(cifar_dir, tmp_path_factory.mktemp("cifar-small"))
    return load_cifar10(root, cache_dir=tmp_path_factory.mktemp("cache"))


def tiny() -> torch.nn.Module:
    return get_arch("nasnet-a").build(layout="cifar", cells=1, filters=24)


def test_the_pick_trains_on_train_and_scores_on_val_only(data: Cifar10) -> None:
    source = GuardedCifar(data)
    with pytest.raises(SplitGuardError):  # the guard works: reading test fails the test
        _ = source.test
    source.test_reads = 0
    pick = pick_lr(tiny, source, FAST, [0.4, 0.01, 0.1], share=0.5)
    assert source.test_reads == 0 and set(source.reads) == {"train", "val"}
    assert pick.grid == (0.01, 0.1, 0.4)  # sorted, each tried once
    scores = [s for s in pick.val_accuracy if s is not None]
    assert len(pick.val_accuracy) == 3 and all(0.0 <= s <= 1.0 for s in scores)
    assert pick.lr == pick.grid[max(range(3), key=lambda i: (pick.val_accuracy[i] or -1, -i))]
    assert pick.train_images == len(data.train) and pick.val_images == len(data.val)
    assert pick.share == 0.5 and pick.seconds > 0
    assert pick.to_dict()["split"] == "val"


def test_a_short_run_is_a_slice_of_the_budget() -> None:
    """Seconds on the clock under a time budget, else steps (warm-up shrunk alike)."""
    compare = get_preset("cpu-compare")
    short = short_run(compare.train, compare.pick_share, 45_000)
    assert short.time_budget == pytest.approx(18.0) and short.max_steps is None
    assert short.warmup_epochs == compare.train.warmup_epochs  # a share of the clock already
    stepped = short_run(replace(FAST, max_steps=None, epochs=4, warmup_epochs=1.0), 0.25, 320)
    assert stepped.max_steps == 10 and stepped.warmup_epochs == pytest.approx(0.25)
    assert stepped.time_budget is None and stepped.eval_every == 0


def test_cpu_compare_picks_from_one_grid_and_measures_formats() -> None:
    """The comparison recipe carries the grid; formats are measured per model, not pinned."""
    for name in ("cpu-compare", "cpu-final"):
        train = get_preset(name).train
        assert train.channels_last is None and train.bf16 is None
    assert get_preset("cpu-compare").lr_grid == (0.01, 0.03, 0.1, 0.3)


@pytest.mark.parametrize(("text", "message"), [
    ("", "is empty"), (" , ", "is empty"), ("0,0.1", "positive"), ("-0.1", "positive"),
    ("nan", "positive"), ("inf", "positive"), ("0.1,fast", "comma-separated numbers"),
    ("1e3", "(0, 100]"),
])
def test_bad_grids_are_refused_naming_the_flag(text: str, message: str) -> None:
    with pytest.raises(RecipeError, match="--lr-grid") as info:
        parse_lr_grid(text)
    assert message in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(RecipeError, match="numbers"):
        check_lr_grid([0.1, True])


def test_nas_train_picks_on_val_then_reads_test_once_and_records_the_pick(
    data: Cifar10, tmp_path: Path
) -> None:
    """The whole path of `nas train`: the pick's short runs read train and val, the test
    split is read once (by the final training, after the pick), and the pick is in the
    returned row, the model card and the models row, and in `nas compare`."""
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    source = GuardedCifar(data, guard=False)
    row = run_train("nasnet-a", preset="cpu-quick", cells=1, filters=24, epochs=1,
                    max_steps=4, seed=1, out=tmp_path / "runs", storage=url, cifar=source,
                    lr_grid="0.02,0.2")
    assert source.test_reads == 1  # the final scoring; a pick that read test makes this 2+
    assert source.reads[1:] == ["train", "val"]  # the pick's reads, after the final split's
    pick = row["lr_pick"]
    assert pick["grid"] == [0.02, 0.2] and row["lr"] == pick["lr"] in pick["grid"]
    assert pick["split"] == "val" and len(pick["val_accuracy"]) == 2
    assert set(row["formats"]) == {"channels_last", "bf16"}
    db = open_database(url, create=False)
    try:
        (model,) = db.models()
    finally:
        db.close()
    card = ModelCard.from_dict(model.card)
    assert card.recipe.lr == pick["lr"] and card.recipe.lr_pick == pick
    assert model.metrics["lr_pick"] == pick
    (shown,) = compare_rows(url)
    assert shown["lr"] == pick["lr"] and shown["lr_pick"]["grid"] == [0.02, 0.2]
    assert math.isfinite(shown["accuracy"])


def test_one_value_is_that_lr_without_short_runs(data: Cifar10, tmp_path: Path) -> None:
    source = GuardedCifar(data, guard=False)
    row = run_train("nasnet-a", preset="cpu-compare", cells=1, filters=24, epochs=1,
                    max_steps=2, time_budget=None, seed=1, out=tmp_path, cifar=source,
                    lr_grid="0.03")
    assert row["lr"] == 0.03 and row["lr_pick"] is None
    assert source.reads == ["train_full"]  # no short run: only the final training's read


@pytest.mark.parametrize("name", ["vgg16", "alexnet"])
def test_narrow_networks_without_batchnorm_pass_the_image_to_the_logits(
    name: str, data: Cifar10
) -> None:
    """The layers the width rule creates are He-initialized (search_spaces.baselines). With
    PyTorch's default init VGG-16 at width 1/16 gave logits that varied across real images
    by 2e-7 (AlexNet 3e-4): no signal, and it stayed at chance (10.00%) under cpu-compare."""
    from workers.augment import CIFAR10_MEAN, CIFAR10_STD

    torch.manual_seed(0)
    model = get_arch(name).build(layout="cifar", width=0.0625).eval()
    mean = torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR10_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        logits = model((data.val.x[:64].float() - mean) / std)
    assert float(logits.std(0).mean()) > 1e-2
    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d):  # He over fan-out, as torchvision's VGG
            fan_out = module.out_channels * module.kernel_size[0] * module.kernel_size[1]
            he_std = (2 / fan_out) ** 0.5
            assert float(module.weight.detach().std()) == pytest.approx(he_std, rel=0.5)
            assert module.bias is None or not module.bias.any()
