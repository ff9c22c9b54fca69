"""`nas transfer` on real Imagenette photos: ImageFolder decoding and augmentation, Ray Train
with two DDP workers on CPU, the checkpoint, the models row, and the bad inputs (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import shared_data

from nas.cli import main
from nas.errors import BadInput
from nas.training.transfer import plan_transfer
from search_spaces import Arch, Genotype, get_arch
from workers.augment import center_crop, random_resized_crop
from workers.checkpoint import load_checkpoint
from workers.imagefolder import (
    ImageFolderError,
    decode_split,
    load_imagefolder,
    scan_imagefolder,
)
from workers.source import balanced_subset

CLASSES = 4


def link_subset(dst: Path, train: int, val: int, classes: int = CLASSES) -> Path:
    """A small ImageFolder of symlinks to real Imagenette files (first classes, first files)."""
    src = shared_data() / "imagenette"
    if not (src / "train").is_dir():
        pytest.skip(f"real Imagenette not found at {src} (set NAS_SHARED_DATA)")
    names = sorted(p.name for p in (src / "train").iterdir() if p.is_dir())[:classes]
    for split, count in (("train", train), ("val", val)):
        for name in names:
            folder = dst / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for f in sorted((src / split / name).iterdir())[:count]:
                (folder / f.name).symlink_to(f)
    return dst


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Decoded-image caches go to the test's own directory, not ~/.cache."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("NAS_CACHE_DIR", str(folder))
    return folder


@pytest.fixture
def subset(tmp_path: Path) -> Path:
    return link_subset(tmp_path / "imagenette", train=10, val=5)


# -- data -----------------------------------------------------------------------------------


def test_scan_and_decode_real_images(subset: Path, cache: Path) -> None:
    index = scan_imagefolder(subset)
    assert len(index.classes) == CLASSES
    assert len(index.files["train"]) == 10 * CLASSES and len(index.files["val"]) == 5 * CLASSES
    data = load_imagefolder(subset, 37)
    assert data.train.x.shape == (10 * CLASSES, 3, 37, 37) and data.train.x.dtype == torch.uint8
    assert sorted(data.train.y.unique().tolist()) == list(range(CLASSES))
    assert data.train.x.float().std() > 10  # photos, not blank frames
    cached = list(cache.glob("imagefolder-*.safetensors"))
    assert len(cached) == 1
    again = load_imagefolder(subset, 37)  # from the cache this time
    assert torch.equal(again.train.x, data.train.x) and torch.equal(again.val.y, data.val.y)
    other = load_imagefolder(subset, 40)  # another stored size is another cache entry
    assert other.train.x.shape[-1] == 40 and len(list(cache.glob("imagefolder-*"))) == 2


def test_greyscale_image_becomes_rgb(tmp_path: Path) -> None:
    from PIL import Image

    src = next((shared_data() / "imagenette" / "val").glob("*/*.JPEG"), None)
    if src is None:
        pytest.skip("real Imagenette not found")
    path = tmp_path / "grey.jpg"
    with Image.open(src) as photo:
        photo.convert("L").save(path)  # one channel, as 242 Imagenette files are
    with Image.open(path) as check:
        assert check.mode == "L"
    split = decode_split([(path, 0)], 48)
    assert split.x.shape == (1, 3, 48, 48)
    assert torch.equal(split.x[0, 0], split.x[0, 1]) and torch.equal(split.x[0, 1], split.x[0, 2])


def test_batch_augmentation_shapes_ranges_and_seed(subset: Path, cache: Path) -> None:
    x = load_imagefolder(subset, 74).train.x[:16]
    a = random_resized_crop(x, 64, torch.Generator().manual_seed(3))
    b = random_resized_crop(x, 64, torch.Generator().manual_seed(3))
    c = random_resized_crop(x, 64, torch.Generator().manual_seed(4))
    assert a.shape == (16, 3, 64, 64) and a.dtype == torch.float32
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.min() > -2.2 and a.max() < 2.7  # ImageNet-normalised 0..255 pixels
    val = center_crop(x, 64)
    assert val.shape == (16, 3, 64, 64)
    # a full-area, square, unflipped crop is the stored image resampled: close to a resize
    full = random_resized_crop(x, 74, torch.Generator().manual_seed(0), scale=(1.0, 1.0),
                               ratio=(1.0, 1.0), flip=False)
    assert (full - center_crop(x, 74)).abs().mean() < 0.05


def test_balanced_subset_takes_every_class() -> None:
    labels = torch.arange(40) % 4
    keep = balanced_subset(labels, 12, seed=0)
    assert len(keep) == 12 and len(set(keep.tolist())) == 12
    assert torch.bincount(labels[keep]).tolist() == [3, 3, 3, 3]


def test_plan_resolves_imagenet_layout(subset: Path) -> None:
    plan = plan_transfer(get_arch("nasnet-a"), subset, preset="cpu-transfer", epochs=2,
                         batch_size=8, workers=2)
    assert plan.settings["layout"] == "imagenet" and plan.settings["num_classes"] == CLASSES
    assert (plan.settings["cells"], plan.settings["filters"]) == (2, 264)
    assert plan.stored_size == round(64 * 1.15)
    base = plan_transfer(get_arch("resnet18"), subset, preset="cpu-transfer", batch_size=8)
    assert base.settings["width"] == 0.5 and base.settings["image_size"] == 64
    with pytest.raises(BadInput, match="split evenly"):
        plan_transfer(get_arch("nasnet-a"), subset, batch_size=9, workers=2)


# -- bad input: exit 2, one line --------------------------------------------------------------


def _exit(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(args)
    err = capsys.readouterr().err.strip()
    return code, err


def test_missing_val_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "d" / "train" / "a").mkdir(parents=True)
    code, err = _exit(["transfer", "nasnet-a", "--data", str(tmp_path / "d")], capsys)
    assert code == 2 and "no val/ folder" in err and len(err.splitlines()) == 1


def test_missing_train_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "d" / "val" / "a").mkdir(parents=True)
    code, err = _exit(["transfer", "nasnet-a", "--data", str(tmp_path / "d")], capsys)
    assert code == 2 and "no train/ folder" in err and len(err.splitlines()) == 1


def test_mismatched_class_folders(subset: Path, capsys: pytest.CaptureFixture[str]) -> None:
    extra = subset / "val" / "n99999999"
    extra.mkdir()
    code, err = _exit(["transfer", "nasnet-a", "--data", str(subset)], capsys)
    assert code == 2 and "same class folders" in err and "n99999999" in err
    assert len(err.splitlines()) == 1


def test_unreadable_image(subset: Path, cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = subset / "train" / sorted(p.name for p in (subset / "train").iterdir())[0] / "x.JPEG"
    bad.write_bytes(b"this is not a JPEG file")
    code, err = _exit(["transfer", "nasnet-a", "--data", str(subset), "--batch-size", "8",
                       "--storage", f"sqlite:///{subset.parent / 'nas.db'}"], capsys)
    assert code == 2 and "cannot read image" in err and "x.JPEG" in err
    assert len(err.splitlines()) == 1
    with pytest.raises(ImageFolderError):
        load_imagefolder(subset, 40)


def test_bad_storage_and_out_are_named_before_training(
    subset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A --storage or --out that the end of the run would fail on is refused at the start:
    exit 2, one line, no database file and no checkpoint directory left behind."""
    missing = tmp_path / "no" / "such" / "dir" / "nas.db"
    code, err = _exit(["transfer", "nasnet-a", "--data", str(subset), "--batch-size", "8",
                       "--storage", f"sqlite:///{missing}"], capsys)
    assert code == 2 and "--storage" in err and len(err.splitlines()) == 1
    assert not missing.parent.exists()
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    code, err = _exit(["transfer", "nasnet-a", "--data", str(subset), "--batch-size", "8",
                       "--out", str(blocker / "runs"),
                       "--storage", f"sqlite:///{tmp_path / 'nas.db'}"], capsys)
    assert code == 2 and "give a directory nas can write into" in err
    assert len(err.splitlines()) == 1 and blocker.read_text() == "not a directory"


def test_zero_workers(subset: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _exit(["transfer", "nasnet-a", "--data", str(subset), "--workers", "0"], capsys)
    assert code == 2 and "--workers must be at least 1" in err and len(err.splitlines()) == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_gpus_where_there_are_none(subset: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import ray

    if ray.is_initialized():
        pytest.skip("a Ray cluster is already up; the pre-check is for a local start")
    code, err = _exit(["transfer", "nasnet-a", "--data", str(subset), "--gpus-per-worker", "1"],
                      capsys)
    assert code == 2 and "has none" in err and len(err.splitlines()) == 1


def test_gpus_beyond_the_cluster(ray_cluster: None) -> None:
    import ray

    from nas.training.transfer import check_resources

    gpus = ray.cluster_resources().get("GPU", 0)
    with pytest.raises(BadInput, match="GPUs; the Ray cluster has"):
        check_resources(2, gpus + 1)
    with pytest.raises(BadInput, match="CPUs; the Ray cluster has"):
        check_resources(int(ray.cluster_resources()["CPU"]) + 1, 0)


def test_baseline_rejects_cells(subset: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _exit(["transfer", "resnet18", "--data", str(subset), "--cells", "2"], capsys)
    assert code == 2 and "baseline" in err


# -- the real thing: Ray Train, two workers --------------------------------------------------


@pytest.mark.slow
def test_transfer_two_ray_train_workers(
    tmp_path: Path, cache: Path, ray_cluster: None, capsys: pytest.CaptureFixture[str]
) -> None:
    from nas.db import open_database

    data = link_subset(tmp_path / "imagenette", train=10, val=5)
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    code = main(["transfer", "nasnet-a", "--data", str(data), "--cells", "1", "--filters", "48",
                 "--image-size", "32", "--epochs", "1", "--batch-size", "8", "--workers", "2",
                 "--seed", "1", "--out", str(tmp_path / "runs"), "--storage", url, "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    row = json.loads(captured.out)  # stdout holds the JSON document and nothing else
    assert {"arch", "top1", "top5", "params", "mult_adds", "train_seconds",
            "checkpoint"} <= set(row)
    assert row["arch"] == "nasnet-a" and 0 <= row["top1"] <= row["top5"] <= 1
    assert "epoch 1" in captured.err  # progress went to stderr

    # both workers took part: each reported its own rank, process and shard sizes
    workers = row["workers"]
    assert sorted(w["rank"] for w in workers) == [0, 1]
    assert len({w["pid"] for w in workers}) == 2
    steps = (10 * CLASSES) // 8
    assert all(w["train_samples"] == steps * 4 for w in workers)
    assert sum(w["val_samples"] for w in workers) == 5 * CLASSES

    # the checkpoint loads into Arch.build with strict keys, and scores what was reported
    state, card = load_checkpoint(Path(row["checkpoint"]))
    assert card.architecture.layout == "imagenet" and card.provenance.command == "transfer"
    assert card.metrics.accuracy == row["top1"] and card.metrics.top5 == row["top5"]
    assert card.metrics.split == "val" and card.input.classes is not None
    assert (card.cost.params, card.cost.mult_adds) == (row["params"], row["mult_adds"])
    arch = Arch("nasnet-a", "genotype", Genotype.from_dict(card.architecture.genotype))
    model = arch.build(**card.architecture.settings)
    model.load_state_dict(state, strict=True)
    model.eval()
    val = load_imagefolder(data, card.recipe.settings["stored_size"]).val
    with torch.no_grad():
        pred = model(center_crop(val.x, 32)).argmax(1)
    assert abs(float((pred == val.y).float().mean()) - row["top1"]) < 1e-6

    # and a models row points at it
    db = open_database(url, create=False)
    try:
        models = db.models()
    finally:
        db.close()
    assert len(models) == 1
    record = models[0]
    assert (record.kind, record.arch, record.layout) == ("transfer", "nasnet-a", "imagenet")
    assert record.test_accuracy == row["top1"] and record.checkpoint == row["checkpoint"]
    assert record.key == arch.genotype.key() and record.metrics["top5"] == row["top5"]
    assert record.card == card.to_dict()
