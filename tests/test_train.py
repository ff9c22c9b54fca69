"""The trainer on small real CIFAR-10 subsets: results, determinism, stopping, schedules."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from test_data import make_small_cifar

from search_spaces import get_arch
from workers.augment import ResizedCrop
from workers.data import Cifar10, load_cifar10
from workers.imagefolder import load_imagefolder
from workers.presets import PRESETS, UnknownPresetError, get_preset
from workers.train import (
    EpochReport,
    TrainConfig,
    TrainError,
    benchmark,
    evaluate,
    lr_at,
    measure_formats,
    nhwc_hazard,
    train,
)

FAST = TrainConfig(epochs=1, batch_size=32, lr=0.05, max_steps=3, channels_last=False,
                   bf16=False, threads=2, eval_batch_size=100)


@pytest.fixture(scope="module")
def data(cifar_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Cifar10:
    root = make_small_cifar(cifar_dir, tmp_path_factory.mktemp("cifar-small"))
    return load_cifar10(root, cache_dir=tmp_path_factory.mktemp("cache"))


def tiny(**settings: object) -> torch.nn.Module:
    torch.manual_seed(0)
    return get_arch("nasnet-a").build(layout="cifar", cells=1, filters=24, **settings)


def test_train_reports_epochs_and_stops_at_max_steps(data: Cifar10) -> None:
    seen: list[EpochReport] = []
    steps: list[int] = []
    config = TrainConfig(**{**FAST.to_dict(), "epochs": 2, "max_steps": 10})
    result = train(tiny(), data.train, data.val, config,
                   on_epoch=lambda r: seen.append(r) or False,
                   on_step=lambda s, t: steps.append(s))
    # 270 images / 32 = 8 steps per epoch: 8 in epoch 1, 2 more in epoch 2, then "max steps"
    assert result.steps == 10 and steps == list(range(1, 11))
    assert result.stopped == "max steps"
    assert [r.epoch for r in result.epochs] == [1, 2]
    assert seen == result.epochs  # every epoch, the last too, reaches the callback
    assert 0.0 <= result.accuracy <= 1.0 and result.accuracy == result.epochs[-1].val_accuracy
    assert all(math.isfinite(r.train_loss) and r.train_loss > 0 for r in result.epochs)
    assert result.images_per_s > 0 and result.train_seconds > 0
    assert result.settings["train_images"] == len(data.train)


def test_time_budget_stops_on_the_clock_and_still_scores(data: Cifar10) -> None:
    """`cpu-compare` gives every model the same seconds: the epoch cap is not reached, the
    run ends with "time budget" and the model is scored once, at the end."""
    config = TrainConfig(**{**FAST.to_dict(), "epochs": 1000, "max_steps": None,
                            "time_budget": 1.0, "eval_every": 0})
    result = train(tiny(), data.train, data.val, config)
    assert result.stopped == "time budget"
    assert 0 < result.steps < 1000 * result.settings["steps_per_epoch"]
    assert result.train_seconds >= 1.0
    assert 0.0 <= result.accuracy <= 1.0 and result.accuracy == result.epochs[-1].val_accuracy
    assert all(math.isnan(r.val_accuracy) for r in result.epochs[:-1])
    with pytest.raises(TrainError, match="--time-budget"):
        TrainConfig(time_budget=0).validate()
    # the schedule on the clock: warm-up, peak, half, zero at the end of the budget
    assert lr_at(0.0, 180.0, 9.0, 1.0) == pytest.approx(0.1)
    assert lr_at(94.5, 180.0, 9.0, 1.0) == pytest.approx(0.5)
    assert lr_at(180.0, 180.0, 9.0, 1.0) == pytest.approx(0.0, abs=1e-12)


def test_training_lowers_the_loss(data: Cifar10) -> None:
    config = TrainConfig(**{**FAST.to_dict(), "epochs": 3, "max_steps": None, "lr": 0.1,
                            "batch_size": 27, "label_smoothing": 0.0})
    result = train(tiny(), data.train, data.val, config)
    assert result.stopped is None and len(result.epochs) == 3
    assert result.epochs[-1].train_loss < result.epochs[0].train_loss


def test_cpu_training_is_deterministic(data: Cifar10) -> None:
    runs = []
    for _ in range(2):
        model = tiny(auxiliary=True, drop_path=0.2)
        result = train(model, data.train, data.val, FAST)
        runs.append((result.epochs[0].train_loss, model.state_dict()))
    assert runs[0][0] == runs[1][0]
    for key, value in runs[0][1].items():
        assert torch.equal(value, runs[1][1][key]), key


def test_auxiliary_head_and_drop_path_are_used(data: Cifar10) -> None:
    model = tiny(auxiliary=True, drop_path=0.3)
    before = {k: v.clone() for k, v in model.aux_head.state_dict().items()}
    train(model, data.train, data.val, FAST)
    after = model.aux_head.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)  # the aux loss trained it
    assert model.drop_path_prob > 0  # ScheduledDropPath progressed


def test_non_finite_loss_stops_the_run(data: Cifar10) -> None:
    model = tiny()
    with torch.no_grad():
        model.head[-1].weight.fill_(float("nan"))  # diverged weights
    result = train(model, data.train, data.val, TrainConfig(**{**FAST.to_dict(), "epochs": 3}))
    assert result.stopped == "non-finite loss"
    assert result.steps == 1 and len(result.epochs) == 1
    assert math.isnan(result.epochs[0].train_loss)


def test_on_epoch_true_prunes(data: Cifar10) -> None:
    config = TrainConfig(**{**FAST.to_dict(), "epochs": 3, "max_steps": None, "subset": 64})
    result = train(tiny(), data.train, data.val, config, on_epoch=lambda r: True)
    assert result.stopped == "pruned" and len(result.epochs) == 1 and result.steps == 2


def test_baseline_without_aux_or_progress_trains(data: Cifar10) -> None:
    model = get_arch("lenet5").build(layout="cifar")
    assert not hasattr(model, "set_progress")
    result = train(model, data.train, data.val, FAST)
    assert result.steps == 3 and 0.0 <= result.accuracy <= 1.0
    assert evaluate(model, data.val) == pytest.approx(result.accuracy, abs=0.02)


def test_one_loop_trains_a_cifar_cell_network_and_an_imagenet_baseline(
        data: Cifar10, tmp_path: Path) -> None:
    """`train` itself, for both: a CIFAR-layout NASNet cell network through CIFAR's view and an
    ImageNet-layout baseline on real Imagenette photos through RandomResizedCrop."""
    from test_transfer import link_subset

    cifar = train(tiny(), data.train, data.val, FAST)
    photos = load_imagefolder(link_subset(tmp_path / "imagenette", train=8, val=4), 37,
                              cache_dir=tmp_path / "cache")
    model = get_arch("mobilenet-v1").build(layout="imagenet", image_size=32, width=0.25,
                                           num_classes=len(photos.classes))
    view = ResizedCrop(32, min_scale=0.25, mean=photos.mean, std=photos.std)
    imagenet = train(model, photos.train, photos.val, replace(FAST, batch_size=8, max_steps=None),
                     view=view)
    assert cifar.steps == 3 and imagenet.steps == 32 // 8  # 4 classes x 8 photos, batch 8
    for result in (cifar, imagenet):
        assert 0.0 <= result.accuracy <= result.top5 <= 1.0
        assert math.isfinite(result.epochs[-1].train_loss)
        assert result.settings["world_size"] == 1  # one process: no DDP wrapper
    assert evaluate(model, photos.val, view=view) == pytest.approx(imagenet.accuracy, abs=1e-9)


def _ddp_rank(rank: int, world: int, folder: str, train_split: object, val: object) -> None:
    """One rank of a real gloo process group, running the same `train` as above."""
    import json

    import torch.distributed as dist
    from safetensors.torch import save_file

    dist.init_process_group("gloo", init_method=f"file://{folder}/rendezvous", rank=rank,
                            world_size=world)
    try:
        config = replace(FAST, batch_size=32, max_steps=None, threads=1)
        model = tiny()
        result = train(model, train_split, val, config)  # type: ignore[arg-type]
        save_file({k: v.contiguous() for k, v in model.state_dict().items()},
                  f"{folder}/rank{rank}.safetensors")
        Path(f"{folder}/rank{rank}.json").write_text(json.dumps(
            {"steps": result.steps, "accuracy": result.accuracy, "world": dist.get_world_size(),
             "loss": result.epochs[-1].train_loss, "settings": result.settings}))
    finally:
        dist.destroy_process_group()


def test_the_same_loop_runs_ddp_over_two_gloo_processes(data: Cifar10, tmp_path: Path) -> None:
    """Inside a process group `train` wraps the model in DDP and splits each global batch by
    rank: both ranks end with the same weights and report the same (all-reduced) scores."""
    import json

    import torch.multiprocessing as mp
    from safetensors.torch import load_file

    mp.spawn(_ddp_rank, args=(2, str(tmp_path), data.train, data.val), nprocs=2, join=True)
    reports = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    states = [load_file(str(tmp_path / f"rank{r}.safetensors")) for r in (0, 1)]
    assert reports[0]["steps"] == reports[1]["steps"] == len(data.train) // 32
    assert reports[0]["settings"]["world_size"] == 2
    assert reports[0]["accuracy"] == reports[1]["accuracy"]  # counts summed over the shards
    assert reports[0]["loss"] == pytest.approx(reports[1]["loss"])  # the ranks' mean
    for key, value in states[0].items():
        if value.is_floating_point():  # DDP kept the replicas equal (BN stats from rank 0)
            assert torch.allclose(value, states[1][key], atol=1e-6), key


def test_bad_configs_are_train_errors(data: Cifar10) -> None:
    with pytest.raises(TrainError, match="--epochs"):
        train(tiny(), data.train, data.val, TrainConfig(epochs=0))
    with pytest.raises(TrainError, match="larger than the 20 training images"):
        train(tiny(), data.train, data.val, TrainConfig(batch_size=32, subset=20))


def test_schedule_warms_up_then_decays_to_zero() -> None:
    assert lr_at(0, 100, 10, 1.0) == pytest.approx(0.1)
    assert lr_at(10, 100, 10, 1.0) == pytest.approx(1.0)
    assert lr_at(55, 100, 10, 1.0) == pytest.approx(0.5)
    assert lr_at(100, 100, 10, 1.0) == pytest.approx(0.0, abs=1e-12)
    rates = [lr_at(s, 100, 10, 1.0) for s in range(10, 101)]
    assert rates == sorted(rates, reverse=True)


def test_measured_formats_and_benchmark(data: Cifar10) -> None:
    model = tiny()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    choice = measure_formats(model, 32, torch.device("cpu"), steps=2)
    assert len(choice) == 2 and all(isinstance(c, bool) for c in choice)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    report = benchmark(tiny(), data.train, FAST, steps=1, repeats=1)
    assert report["images_per_s"] > 0 and report["model_only_images_per_s"] > 0
    assert report["ratio"] == pytest.approx(
        report["images_per_s"] / report["model_only_images_per_s"])


def test_channels_last_is_refused_where_onednn_corrupts_memory(data: Cifar10) -> None:
    """ResNet-18 at width 1/16 has stride-2 1x1 convolutions over 4 channels; trained
    channels_last on an AVX2 CPU it crashed the process (oneDNN issue #6035). The trainer
    keeps such a model contiguous; the presets' networks keep channels_last."""
    assert not nhwc_hazard(tiny())  # its strided 1x1 convolutions see 12 channels
    assert not nhwc_hazard(get_arch("nasnet-a").build(layout="cifar", cells=1, filters=96))
    torch.manual_seed(0)
    narrow = get_arch("resnet18").build(layout="cifar", width=1 / 16)
    assert nhwc_hazard(narrow)
    config = TrainConfig(**{**FAST.to_dict(), "channels_last": True})
    result = train(narrow, data.train, data.val, config)
    assert result.settings["channels_last"] is False and math.isfinite(result.accuracy)
    chosen = measure_formats(tiny(), 32, torch.device("cpu"), steps=2, channels_last=False)
    assert chosen[0] is False


def test_presets_cover_the_six_purposes() -> None:
    assert set(PRESETS) == {"cpu-search", "cpu-quick", "cpu-compare", "cpu-final", "gpu-nasnet",
                            "gpu-final"}
    for preset in PRESETS.values():
        preset.train.validate()
        assert preset.trials >= 1 and {"cells", "filters"} <= set(preset.network)
        get_arch("nasnet-a").resolve(layout="cifar", **preset.network)
    compare = get_preset("cpu-compare")
    assert compare.train.time_budget == 180 and compare.train.subset is None
    nasnet = get_preset("gpu-nasnet")
    assert nasnet.network["cells"] == 2 and nasnet.train.epochs == 20
    assert nasnet.train.subset is None  # all 45,000 images
    with pytest.raises(UnknownPresetError, match="cpu-quick"):
        get_preset("tpu-huge")
