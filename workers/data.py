"""CIFAR-10 as uint8 tensors: decoded once, cached, split 45,000 / 5,000 deterministically
(one implementation of `workers.source.DataSource`).

Two on-disk layouts are accepted: torchvision's `cifar-10-batches-py/` and the ImageFolder
layout `train/<class>/*.jpg`, `test/<class>/*.jpg`. Decoding happens once per data
directory; the arrays go to a safetensors cache (no pickle), so later loads take well under
a second. Augmentation is not done here: it runs on whole batches on the training device
(`workers.augment`).
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from workers.augment import CIFAR10_MEAN, CIFAR10_STD
from workers.source import (
    DataError,
    Split,
    concat,
    default_cache_dir,
    image_files,
    read_cache,
    subset,
    write_cache,
)

CLASSES: tuple[str, ...] = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
VAL_FRACTION = 10  # one image in 10 of the training set is held out: 50,000 -> 45,000 + 5,000
SPLIT_SEED = 0  # fixed forever: the validation split must not move between runs or machines
BATCHES = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
LAYOUTS_HELP = (
    "expected torchvision's cifar-10-batches-py/ (data_batch_1..5, test_batch) or the "
    "ImageFolder layout train/<class>/*.jpg and test/<class>/*.jpg"
)
CACHE_VERSION = "1"
_KEYS = ("train_x", "train_y", "test_x", "test_y")


@dataclass(frozen=True)
class Cifar10:
    train: Split  # 45,000 images (of the full set)
    val: Split  # 5,000 images held out of the training set
    test: Split  # 10,000 images: final training only
    fingerprint: str  # sha256 prefix of the decoded arrays: equal data <=> equal fingerprint
    classes: tuple[str, ...] = CLASSES
    mean: tuple[float, float, float] = CIFAR10_MEAN  # 0..255 scale
    std: tuple[float, float, float] = CIFAR10_STD

    @property
    def train_full(self) -> Split:
        """train + val (50,000): what final training fits before scoring on test."""
        return concat(self.train, self.val)


def split_indices(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, validation) indices of the deterministic 90/10 split, stratified by class
    (500 validation images per class on the full set): a fixed-seed permutation within each
    class, indices sorted back into file order."""
    gen = torch.Generator().manual_seed(SPLIT_SEED)
    is_val = torch.zeros(len(y), dtype=torch.bool)
    for cls in torch.unique(y).tolist():
        members = torch.nonzero(y == cls).flatten()
        perm = members[torch.randperm(len(members), generator=gen)]
        is_val[perm[: len(members) // VAL_FRACTION]] = True
    return torch.nonzero(~is_val).flatten(), torch.nonzero(is_val).flatten()


def split_train_val(x: torch.Tensor, y: torch.Tensor) -> tuple[Split, Split]:
    """The 45,000 / 5,000 split of CIFAR-10's 50,000 training images (see split_indices)."""
    train, val = split_indices(y)
    return Split(x[train], y[train]), Split(x[val], y[val])


def default_data_dir() -> Path:
    """env NAS_DATA_DIR, else a directory under the cache where torchvision may download."""
    value = os.environ.get("NAS_DATA_DIR")
    return Path(value) if value else default_cache_dir() / "cifar10"


def detect_layout(root: Path) -> str | None:
    """'torchvision', 'imagefolder', or None when neither is there."""
    if (root / BATCHES).is_dir() or (root.name == BATCHES and (root / "test_batch").exists()):
        return "torchvision"
    if (root / "train").is_dir() or (root / "test").is_dir():
        return "imagefolder"
    return None


def load_cifar10(
    data_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    download: bool = True,
) -> Cifar10:
    """Load (decoding once, then from the cache) and split CIFAR-10.

    With no directory: env NAS_DATA_DIR, else `<cache>/cifar10`. A missing or empty
    directory is filled through torchvision's downloader when `download` is set and the
    network answers; anything else that is neither layout is a `DataError`.
    """
    root = Path(data_dir) if data_dir is not None else default_data_dir()
    root = root.expanduser()
    layout = detect_layout(root) if root.is_dir() else None
    if layout is None:
        if root.exists() and not root.is_dir():
            raise DataError(f"CIFAR-10 directory {root} is not a directory; {LAYOUTS_HELP}")
        empty = not root.exists() or not any(root.iterdir())
        if not (download and empty):
            what = "is not a directory" if not root.exists() else "holds neither layout"
            raise DataError(f"CIFAR-10 directory {root} {what}; {LAYOUTS_HELP}")
        _download(root)
        layout = "torchvision"
    listing = _listing(root, layout)
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    key = hashlib.sha256(f"{CACHE_VERSION}\n{root.resolve()}\n{listing}".encode()).hexdigest()
    cache_file = cache / f"cifar10-{key[:20]}.safetensors"
    cached = read_cache(cache_file, CACHE_VERSION, set(_KEYS))
    if cached is not None and "fingerprint" in cached[1]:
        tensors, fingerprint = cached[0], cached[1]["fingerprint"]
    else:
        tensors, fingerprint = _decode(root, layout)
        write_cache(cache_file, tensors, CACHE_VERSION, {"fingerprint": fingerprint})
    train, val = split_train_val(tensors["train_x"], tensors["train_y"])
    return Cifar10(train, val, Split(tensors["test_x"], tensors["test_y"]), fingerprint)


# -- reading the two layouts ------------------------------------------------------------------


def _download(root: Path) -> None:
    """torchvision's downloader; without a network, a DataError instead of a traceback."""
    import socket

    from torchvision.datasets import CIFAR10

    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(20)
    try:
        root.mkdir(parents=True, exist_ok=True)
        CIFAR10(str(root), train=True, download=True)
    except Exception as exc:
        raise DataError(
            f"CIFAR-10 directory {root} is not a directory with the data and the download "
            f"failed ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
            f"{LAYOUTS_HELP}"
        ) from None
    finally:
        socket.setdefaulttimeout(previous)


def _listing(root: Path, layout: str) -> str:
    """Names, sizes and mtimes of the data files: the cache key (cheap: no file is read)."""
    rows = []
    if layout == "torchvision":
        base = root if root.name == BATCHES else root / BATCHES
        missing = [n for n in (*TRAIN_BATCHES, "test_batch") if not (base / n).is_file()]
        if missing:
            raise DataError(
                f"CIFAR-10 directory {root} is partial: {base} lacks {', '.join(missing)}; "
                f"{LAYOUTS_HELP}"
            )
        for name in (*TRAIN_BATCHES, "test_batch"):
            st = (base / name).stat()
            rows.append(f"{name} {st.st_size} {st.st_mtime_ns}")
        return "\n".join(rows)
    for split in ("train", "test"):
        if not (root / split).is_dir():
            raise DataError(f"CIFAR-10 directory {root} is partial: no {split}/; {LAYOUTS_HELP}")
    classes = _classes(root)
    for split in ("train", "test"):
        for cls in classes:
            files = [(p.name, st.st_size, st.st_mtime_ns)
                     for p, st in image_files(root / split / cls)]
            if not files:
                raise DataError(
                    f"CIFAR-10 directory {root} is partial: {split}/{cls}/ holds no images; "
                    f"{LAYOUTS_HELP}"
                )
            rows.extend(f"{split}/{cls}/{n} {s} {m}" for n, s, m in files)
    return "\n".join(rows)


def _classes(root: Path) -> list[str]:
    train = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())
    test = sorted(p.name for p in (root / "test").iterdir() if p.is_dir())
    if not train:
        raise DataError(f"CIFAR-10 directory {root} has no class folders in train/; "
                        f"{LAYOUTS_HELP}")
    if train != test:
        raise DataError(
            f"CIFAR-10 directory {root} is partial: train/ has classes {train} but test/ has "
            f"{test}; {LAYOUTS_HELP}"
        )
    if set(train) != set(CLASSES):  # a network of 10 outputs would train on wrong labels
        extra = sorted(set(train) - set(CLASSES))
        absent = sorted(set(CLASSES) - set(train))
        found = "; ".join(part for part in (
            f"not CIFAR-10's: {', '.join(extra[:5])}" if extra else "",
            f"missing: {', '.join(absent[:5])}" if absent else "") if part)
        raise DataError(f"CIFAR-10 directory {root} must hold exactly CIFAR-10's 10 class "
                        f"folders in train/ and test/ ({found}); {LAYOUTS_HELP}")
    return list(CLASSES)  # CIFAR-10's own label order (also alphabetical)


def _decode(root: Path, layout: str) -> tuple[dict[str, torch.Tensor], str]:
    if layout == "torchvision":
        base = root if root.name == BATCHES else root / BATCHES
        train = [_read_batch(base / name, root) for name in TRAIN_BATCHES]
        tx = np.concatenate([b[0] for b in train])
        ty = np.concatenate([b[1] for b in train])
        sx, sy = _read_batch(base / "test_batch", root)
        tensors = {
            "train_x": torch.from_numpy(tx), "train_y": torch.from_numpy(ty),
            "test_x": torch.from_numpy(sx), "test_y": torch.from_numpy(sy),
        }
    else:
        classes = _classes(root)
        tensors = {}
        for split in ("train", "test"):
            x, y = _decode_folder(root, root / split, classes)
            tensors[f"{split}_x"], tensors[f"{split}_y"] = x, y
    digest = hashlib.sha256()
    for name in sorted(tensors):
        digest.update(name.encode())
        digest.update(tensors[name].contiguous().numpy().tobytes())
    return tensors, digest.hexdigest()[:16]


class _ArraysOnly(pickle.Unpickler):
    """Unpickle CIFAR's batch dicts but refuse every class except numpy arrays: a batch file
    from an untrusted source can then build data, never run code."""

    ALLOWED: ClassVar[set[tuple[str, str]]] = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    }

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _read_batch(path: Path, root: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as f:
            batch = _ArraysOnly(io.BytesIO(f.read()), encoding="latin1").load()
        data = np.asarray(batch.get("data", batch.get(b"data")), dtype=np.uint8)
        labels = batch.get("labels", batch.get(b"labels"))
        labels = np.asarray(labels, dtype=np.int64)
        data = data.reshape(-1, 3, 32, 32)
        if data.shape[0] != labels.shape[0] or labels.min() < 0 or labels.max() >= 10:
            raise ValueError("images and labels do not match")
    except Exception as exc:
        raise DataError(
            f"CIFAR-10 directory {root}: {path.name} is not a CIFAR-10 batch "
            f"({type(exc).__name__}: {exc}); {LAYOUTS_HELP}"
        ) from None
    return np.ascontiguousarray(data), labels


def _decode_folder(root: Path, folder: Path,
                   classes: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode every image with libjpeg-turbo in batches (a few seconds for 60,000 files)."""
    import warnings

    with warnings.catch_warnings():  # torchvision 0.29 points to torchcodec; still works
        warnings.simplefilter("ignore", DeprecationWarning)
        return _decode_files(root, folder, classes)


def _decode_files(root: Path, folder: Path,
                  classes: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    from torchvision.io import ImageReadMode, decode_image, decode_jpeg

    paths: list[Path] = []
    labels: list[int] = []
    for index, cls in enumerate(classes):
        found = [p for p, _ in image_files(folder / cls)]
        paths.extend(found)
        labels.extend([index] * len(found))
    out = torch.empty(len(paths), 3, 32, 32, dtype=torch.uint8)
    chunk = 2048
    for start in range(0, len(paths), chunk):
        group = paths[start:start + chunk]
        raw = [torch.frombuffer(bytearray(p.read_bytes()), dtype=torch.uint8) for p in group]
        try:
            if not all(p.suffix.lower() in (".jpg", ".jpeg") for p in group):
                raise RuntimeError("not all JPEG")
            images = decode_jpeg(raw, mode=ImageReadMode.RGB)
        except RuntimeError:
            images = []
            for p, data in zip(group, raw, strict=True):
                try:
                    images.append(decode_image(data, mode=ImageReadMode.RGB))
                except RuntimeError as exc:
                    raise DataError(
                        f"CIFAR-10 directory {root}: cannot decode {p} ({str(exc).strip()}); "
                        "replace or delete the file"
                    ) from None
        for offset, (p, image) in enumerate(zip(group, images, strict=True)):
            if tuple(image.shape) != (3, 32, 32):
                raise DataError(
                    f"CIFAR-10 directory {root}: {p} is {image.shape[2]}x{image.shape[1]}, "
                    "not 32x32"
                )
            out[start + offset] = image
    return out, torch.tensor(labels, dtype=torch.int64)


__all__ = [
    "CLASSES",
    "Cifar10",
    "DataError",
    "Split",
    "concat",
    "default_cache_dir",
    "default_data_dir",
    "load_cifar10",
    "split_train_val",
    "subset",
]
