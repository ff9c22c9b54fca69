"""CIFAR-10 loading on small real subsets of ../shared/data/cifar10: both layouts, the cache,
the split, subsets, bad data, and batch augmentation."""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from workers.augment import (
    CIFAR10_MEAN,
    IMAGENET_MEAN,
    MEAN,
    STD,
    augment,
    cutout,
    normalize,
    random_crop,
    random_flip,
)
from workers.data import (
    BATCHES,
    CLASSES,
    DataError,
    Split,
    default_cache_dir,
    load_cifar10,
    split_indices,
    subset,
)

TRAIN_PER_CLASS = 30
TEST_PER_CLASS = 10


def make_small_cifar(source: Path, dest: Path, train: int = TRAIN_PER_CLASS,
                     test: int = TEST_PER_CLASS) -> Path:
    """An ImageFolder of real CIFAR-10 JPEGs (copies of the first files of every class)."""
    for split, count in (("train", train), ("test", test)):
        for cls in CLASSES:
            (dest / split / cls).mkdir(parents=True, exist_ok=True)
            names = sorted(os.listdir(source / split / cls))[:count]
            for name in names:
                shutil.copyfile(source / split / cls / name, dest / split / cls / name)
    return dest


def write_batches(cifar: object, dest: Path) -> Path:
    """torchvision's cifar-10-batches-py written from our decoded arrays (pickles of dicts of
    numpy arrays, as the official release holds)."""
    base = dest / BATCHES
    base.mkdir(parents=True)
    x = cifar.train_full.x  # type: ignore[attr-defined]
    y = cifar.train_full.y  # type: ignore[attr-defined]
    order = torch.argsort(y, stable=True)  # any order: the loader must not care
    x, y = x[order].numpy().reshape(len(y), -1), y[order].tolist()
    chunks = np.array_split(np.arange(len(y)), 5)
    for i, idx in enumerate(chunks, start=1):
        batch = {b"batch_label": b"training batch", b"data": x[idx],
                 b"labels": [y[j] for j in idx]}
        (base / f"data_batch_{i}").write_bytes(pickle.dumps(batch, protocol=2))
    test = cifar.test  # type: ignore[attr-defined]
    batch = {b"data": test.x.numpy().reshape(len(test), -1), b"labels": test.y.tolist()}
    (base / "test_batch").write_bytes(pickle.dumps(batch, protocol=2))
    return dest


@pytest.fixture(scope="module")
def small_dir(cifar_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_small_cifar(cifar_dir, tmp_path_factory.mktemp("cifar-small"))


@pytest.fixture()
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def test_imagefolder_layout_loads_real_images(small_dir: Path, cache: Path) -> None:
    data = load_cifar10(small_dir, cache_dir=cache, download=False)
    n = 10 * TRAIN_PER_CLASS
    assert len(data.train) + len(data.val) == n
    assert len(data.val) == n // 10
    assert len(data.test) == 10 * TEST_PER_CLASS
    for split in (data.train, data.val, data.test):
        assert split.x.dtype == torch.uint8 and split.x.shape[1:] == (3, 32, 32)
        assert split.y.dtype == torch.int64
        assert set(split.y.tolist()) == set(range(10))
    # real photos, not constant or noise: a wide range of pixel values, per-image variation
    assert int(data.train.x.max()) > 200 and int(data.train.x.min()) < 30
    assert data.train.x.float().std(dim=(1, 2, 3)).min() > 5
    # test labels follow CIFAR-10's class order: first TEST_PER_CLASS files are airplanes
    assert data.test.y[:TEST_PER_CLASS].tolist() == [0] * TEST_PER_CLASS


def test_second_load_comes_from_the_cache(small_dir: Path, cache: Path) -> None:
    first = load_cifar10(small_dir, cache_dir=cache, download=False)
    files = list(cache.glob("cifar10-*.safetensors"))
    assert len(files) == 1
    stamp = files[0].stat().st_mtime_ns
    second = load_cifar10(small_dir, cache_dir=cache, download=False)
    assert files[0].stat().st_mtime_ns == stamp  # read, not rewritten
    assert first.fingerprint == second.fingerprint
    assert torch.equal(first.train.x, second.train.x)
    assert torch.equal(first.test.y, second.test.y)


def test_both_sources_share_one_cache_rule(small_dir: Path, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """NAS_CACHE_DIR, else $XDG_CACHE_HOME/nas: CIFAR-10 and ImageFolder caches alike."""
    from test_transfer import link_subset

    from workers.imagefolder import load_imagefolder

    monkeypatch.delenv("NAS_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "nas"
    cifar = load_cifar10(small_dir, download=False)
    photos = load_imagefolder(link_subset(tmp_path / "imagenette", train=2, val=1), 36)
    assert len(list((tmp_path / "xdg" / "nas").glob("cifar10-*.safetensors"))) == 1
    assert len(list((tmp_path / "xdg" / "nas").glob("imagefolder-*.safetensors"))) == 1
    assert (cifar.mean, photos.mean) == (CIFAR10_MEAN, IMAGENET_MEAN)  # 0..255 scale
    monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path / "mine"))
    assert default_cache_dir() == tmp_path / "mine"


def test_torchvision_layout_gives_the_same_data(small_dir: Path, cache: Path,
                                                tmp_path: Path) -> None:
    folder = load_cifar10(small_dir, cache_dir=cache, download=False)
    root = write_batches(folder, tmp_path / "tv")
    batches = load_cifar10(root, cache_dir=cache, download=False)
    assert len(batches.train) == len(folder.train) and len(batches.val) == len(folder.val)
    assert torch.equal(batches.test.x, folder.test.x)
    assert torch.equal(batches.test.y, folder.test.y)
    # same images and labels overall (the batch files hold them in another order)
    assert sorted(batches.train_full.y.tolist()) == sorted(folder.train_full.y.tolist())
    assert batches.train_full.x.sum() == folder.train_full.x.sum()
    # the directory cifar-10-batches-py itself is accepted too
    inner = load_cifar10(root / BATCHES, cache_dir=cache, download=False)
    assert inner.fingerprint == batches.fingerprint


def test_a_batch_file_that_would_run_code_is_refused(small_dir: Path, cache: Path,
                                                     tmp_path: Path) -> None:
    folder = load_cifar10(small_dir, cache_dir=cache, download=False)
    root = write_batches(folder, tmp_path / "tv")

    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, ("echo owned > " + str(tmp_path / "owned"),))

    (root / BATCHES / "test_batch").write_bytes(pickle.dumps({b"data": Evil()}))
    with pytest.raises(DataError, match="test_batch is not a CIFAR-10 batch"):
        load_cifar10(root, cache_dir=cache, download=False)
    assert not (tmp_path / "owned").exists()


def test_split_is_deterministic_disjoint_and_stratified(small_dir: Path, cache: Path) -> None:
    data = load_cifar10(small_dir, cache_dir=cache, download=False)
    y = data.train_full.y
    train, val = split_indices(y)
    train2, val2 = split_indices(y.clone())
    assert torch.equal(train, train2) and torch.equal(val, val2)
    assert set(train.tolist()).isdisjoint(val.tolist())
    assert sorted(train.tolist() + val.tolist()) == list(range(len(y)))
    assert torch.bincount(y[val]).tolist() == [TRAIN_PER_CLASS // 10] * 10
    # the loader's validation split is the same on every load
    assert torch.equal(load_cifar10(small_dir, cache_dir=cache).val.x, data.val.x)


@pytest.mark.slow
def test_full_split_is_45000_5000(cifar_dir: Path) -> None:
    data = load_cifar10(cifar_dir)
    assert (len(data.train), len(data.val), len(data.test)) == (45_000, 5_000, 10_000)
    assert torch.bincount(data.val.y).tolist() == [500] * 10


def test_subset_is_seeded_and_drawn_from_the_split(small_dir: Path, cache: Path) -> None:
    train = load_cifar10(small_dir, cache_dir=cache).train
    a, b, c = subset(train, 50, seed=1), subset(train, 50, seed=1), subset(train, 50, seed=2)
    assert len(a) == 50 and torch.equal(a.x, b.x) and not torch.equal(a.x, c.x)
    rows = {bytes(img.numpy().tobytes()) for img in train.x}
    assert all(bytes(img.numpy().tobytes()) in rows for img in a.x)
    assert subset(train, 10_000, seed=0) is train
    with pytest.raises(DataError):
        subset(train, 0, seed=0)


# -- bad data ---------------------------------------------------------------------------------


def _both_layouts_named(message: str) -> None:
    assert "cifar-10-batches-py" in message and "train/<class>" in message
    assert "\n" not in message


def test_missing_directory_names_both_layouts(tmp_path: Path, cache: Path) -> None:
    with pytest.raises(DataError) as info:
        load_cifar10(tmp_path / "nope", cache_dir=cache, download=False)
    assert "not a directory" in str(info.value) and str(tmp_path / "nope") in str(info.value)
    _both_layouts_named(str(info.value))


def test_download_failure_is_a_data_error(tmp_path: Path, cache: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # No network on the test machines (and a closed port where there is one): fails fast.
    monkeypatch.setenv("https_proxy", "http://127.0.0.1:9")
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    with pytest.raises(DataError) as info:
        load_cifar10(tmp_path / "empty", cache_dir=cache, download=True)
    assert "download failed" in str(info.value)
    _both_layouts_named(str(info.value))


def test_wrong_layout(tmp_path: Path, cache: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "readme.txt").write_text("not images")
    with pytest.raises(DataError, match="holds neither layout") as info:
        load_cifar10(tmp_path / "data", cache_dir=cache)
    _both_layouts_named(str(info.value))


def test_partial_directories(small_dir: Path, tmp_path: Path, cache: Path) -> None:
    no_test = tmp_path / "no-test"
    shutil.copytree(small_dir / "train", no_test / "train")
    with pytest.raises(DataError, match="partial: no test/"):
        load_cifar10(no_test, cache_dir=cache)
    missing_class = tmp_path / "missing-class"
    shutil.copytree(small_dir, missing_class)
    shutil.rmtree(missing_class / "test" / "cat")
    with pytest.raises(DataError, match="partial"):
        load_cifar10(missing_class, cache_dir=cache)
    batches = tmp_path / "tv" / BATCHES
    batches.mkdir(parents=True)
    (batches / "data_batch_1").write_bytes(b"")
    with pytest.raises(DataError, match="lacks data_batch_2"):
        load_cifar10(tmp_path / "tv", cache_dir=cache)


def test_corrupt_image_is_named(small_dir: Path, tmp_path: Path, cache: Path) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(small_dir, bad)
    victim = sorted((bad / "train" / "dog").iterdir())[3]
    victim.write_bytes(victim.read_bytes()[:40])  # a truncated JPEG
    with pytest.raises(DataError, match="cannot decode") as info:
        load_cifar10(bad, cache_dir=cache)
    assert victim.name in str(info.value)


# -- augmentation -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def batch(small_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Split:
    data = load_cifar10(small_dir, cache_dir=tmp_path_factory.mktemp("cache"))
    return data.train


def test_crop_shifts_each_image_within_the_padding(batch: Split) -> None:
    x = batch.x[:64]
    gen = torch.Generator().manual_seed(0)
    out = random_crop(x, 4, gen)
    assert out.shape == x.shape and out.dtype == torch.uint8
    assert torch.equal(random_crop(x, 0, gen), x)
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    for i in range(8):  # every crop is one of the 81 windows of the padded image
        windows = padded[i].unfold(1, 32, 1).unfold(2, 32, 1)  # [3, 9, 9, 32, 32]
        match = (windows == out[i][:, None, None]).all(dim=(0, 3, 4))
        assert match.any()
    assert not torch.equal(out, x)


def test_flip_mirrors_about_half(batch: Split) -> None:
    x = batch.x[:200]
    out = random_flip(x, torch.Generator().manual_seed(1))
    same = (out == x).flatten(1).all(1)
    mirrored = (out == x.flip(3)).flatten(1).all(1)
    assert bool((same | mirrored).all())
    assert 60 < int(mirrored.sum()) < 140


def test_cutout_zeroes_at_most_one_square(batch: Split) -> None:
    x = batch.x[:32].clamp(min=1)  # no zeros before, so every zero is cutout's
    out = cutout(x, 8, torch.Generator().manual_seed(2))
    zeros = (out == 0).all(1).flatten(1).sum(1)
    assert int(zeros.max()) <= 64 and int(zeros.min()) >= 16  # a clipped square keeps >= 4x4
    assert bool(((out == 0) | (out == x)).all())


def test_augment_then_normalize_shapes_and_ranges(batch: Split) -> None:
    gen = torch.Generator().manual_seed(3)
    out = augment(batch.x, pad=4, flip=True, cutout_size=16, generator=gen)
    assert out.shape == batch.x.shape and out.dtype == torch.uint8
    z = normalize(batch.x, channels_last=True)
    assert z.dtype == torch.float32 and z.is_contiguous(memory_format=torch.channels_last)
    low = (0 - max(MEAN)) / min(STD)
    high = (255 - min(MEAN)) / min(STD)
    assert float(z.min()) >= low and float(z.max()) <= high
    assert abs(float(z.mean())) < 0.3 and 0.7 < float(z.std()) < 1.3  # real CIFAR statistics
    assert normalize(batch.x[:4], dtype=torch.bfloat16).dtype == torch.bfloat16
