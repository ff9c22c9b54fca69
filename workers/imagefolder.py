"""ImageNet-style data: an ImageFolder (`train/<class>/*`, `val/<class>/*`) decoded once into
uint8 tensors at a stored size, cached, and augmented on whole batches in the training loop.

Why this shape: decoding JPEG is the expensive part of an ImageNet input pipeline, so it
happens once (greyscale and CMYK images become RGB then), every image is resized so its
shorter side is the stored size and centre-cropped square, and the result is cached as
safetensors keyed by the files' names, sizes and times. Training then draws
RandomResizedCrop + flip for a whole batch at once (`workers.augment.ResizedCrop`): no PIL
and no per-image Python work per step. Validation takes the centre `image_size` crop of the
stored image (the usual "resize to 1.14x, centre crop" evaluation). The second
implementation of `workers.source.DataSource`, beside CIFAR-10's `workers.data`.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from workers.augment import IMAGENET_MEAN, IMAGENET_STD, Stats
from workers.source import (
    IMAGE_EXTENSIONS,
    DataError,
    Split,
    default_cache_dir,
    image_files,
    read_cache,
    write_cache,
)

SPLITS = ("train", "val")
CACHE_VERSION = "1"  # bump when the decoding changes, so old caches are not reused
_KEYS = {"train_x", "train_y", "val_x", "val_y"}


class ImageFolderError(DataError):
    """A data directory that is not a usable ImageFolder; the message says what to fix."""


@dataclass(frozen=True)
class FolderIndex:
    """The files of an ImageFolder: class names (sorted folder names) and (path, label) lists."""

    root: Path
    classes: tuple[str, ...]
    files: dict[str, list[tuple[Path, int]]]  # split -> [(path, label)]

    def fingerprint(self, stored_size: int) -> str:
        """Changes when any file is added, removed, rewritten, or the stored size changes."""
        digest = hashlib.sha256(f"v{CACHE_VERSION}:{stored_size}:".encode())
        for split in SPLITS:
            for path, label in self.files[split]:
                stat = path.stat()
                rel = path.relative_to(self.root).as_posix()
                digest.update(f"{rel}:{label}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
        return digest.hexdigest()[:20]


@dataclass(frozen=True)
class ImageFolderData:
    """One implementation of `workers.source.DataSource`: images at the stored size S."""

    train: Split
    val: Split
    classes: tuple[str, ...]
    stored_size: int
    fingerprint: str
    mean: Stats = IMAGENET_MEAN  # 0..255 scale
    std: Stats = IMAGENET_STD


def _images(folder: Path) -> list[Path]:
    return [p for p, _ in image_files(folder)]


def scan_imagefolder(root: Path | str) -> FolderIndex:
    """List `train/` and `val/`; refuse a layout that would train on the wrong labels."""
    root = Path(root)
    layout = "DIR/train/<class>/*.jpg and DIR/val/<class>/*.jpg"
    if not root.is_dir():
        raise ImageFolderError(f"data directory {root} does not exist; expected {layout}")
    missing = [s for s in SPLITS if not (root / s).is_dir()]
    if missing:
        raise ImageFolderError(
            f"{root} has no {' or '.join(f'{s}/' for s in missing)} folder; expected {layout}"
        )
    class_sets = {s: sorted(p.name for p in (root / s).iterdir() if p.is_dir()) for s in SPLITS}
    if not class_sets["train"]:
        raise ImageFolderError(f"{root / 'train'} has no class folders; expected {layout}")
    if class_sets["train"] != class_sets["val"]:
        only_train = sorted(set(class_sets["train"]) - set(class_sets["val"]))
        only_val = sorted(set(class_sets["val"]) - set(class_sets["train"]))
        parts = []
        if only_train:
            parts.append(f"only in train/: {', '.join(only_train[:5])}")
        if only_val:
            parts.append(f"only in val/: {', '.join(only_val[:5])}")
        raise ImageFolderError(
            f"{root}: train/ and val/ must hold the same class folders ({'; '.join(parts)})"
        )
    classes = tuple(class_sets["train"])
    files: dict[str, list[tuple[Path, int]]] = {}
    for split in SPLITS:
        files[split] = []
        for label, name in enumerate(classes):
            found = _images(root / split / name)
            if split == "train" and not found:
                raise ImageFolderError(
                    f"{root / split / name} holds no images ({', '.join(IMAGE_EXTENSIONS)})"
                )
            files[split].extend((p, label) for p in found)
    if not files["val"]:
        raise ImageFolderError(f"{root / 'val'} holds no images; expected {layout}")
    return FolderIndex(root, classes, files)


def decode_image(path: Path, stored_size: int) -> torch.Tensor:
    """One file -> uint8 [3, S, S]: RGB, shorter side resized to S, centre-cropped.

    JPEGs are decoded at a reduced DCT scale when the stored size allows (PIL's draft
    mode), which makes decoding a 224 px ImageNet photo for a 74 px cache several times
    cheaper than a full decode followed by a resize.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.draft("RGB", (stored_size, stored_size))
            img = img.convert("RGB")  # greyscale, CMYK, palette, RGBA -> RGB
            w, h = img.size
            scale = stored_size / min(w, h)
            size = (max(stored_size, round(w * scale)), max(stored_size, round(h * scale)))
            img = img.resize(size, Image.Resampling.BILINEAR, reducing_gap=3.0)
            left, top = (size[0] - stored_size) // 2, (size[1] - stored_size) // 2
            img = img.crop((left, top, left + stored_size, top + stored_size))
            array = np.asarray(img, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ImageFolderError(
            f"cannot read image {path}: {text[:160]}; remove or replace the file"
        ) from None
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()


def decode_split(
    files: Sequence[tuple[Path, int]], stored_size: int, threads: int | None = None
) -> Split:
    """Decode a list of files in parallel threads (torchvision's decoders release the GIL)."""
    x = torch.empty(len(files), 3, stored_size, stored_size, dtype=torch.uint8)
    y = torch.tensor([label for _, label in files], dtype=torch.int64)

    def work(i: int) -> None:
        x[i] = decode_image(files[i][0], stored_size)

    with ThreadPoolExecutor(max_workers=threads or os.cpu_count() or 1) as pool:
        for _ in pool.map(work, range(len(files))):
            pass
    return Split(x, y)


def load_imagefolder(
    root: Path | str,
    stored_size: int,
    cache_dir: Path | None = None,
    index: FolderIndex | None = None,
) -> ImageFolderData:
    """Decoded `train/` and `val/` at `stored_size`, from the cache when the files are unchanged."""
    if stored_size < 8:
        raise ImageFolderError(f"stored image size must be at least 8 pixels (got {stored_size})")
    index = index or scan_imagefolder(root)
    fingerprint = index.fingerprint(stored_size)
    cache = (cache_dir or default_cache_dir()) / f"imagefolder-{fingerprint}.safetensors"
    cached = read_cache(cache, CACHE_VERSION, _KEYS)
    if cached is not None:
        t = cached[0]
        train, val = Split(t["train_x"], t["train_y"]), Split(t["val_x"], t["val_y"])
    else:
        train = decode_split(index.files["train"], stored_size)
        val = decode_split(index.files["val"], stored_size)
        write_cache(cache, {"train_x": train.x, "train_y": train.y, "val_x": val.x,
                            "val_y": val.y}, CACHE_VERSION,
                    {"root": str(index.root), "classes": json.dumps(index.classes),
                     "stored_size": str(stored_size)})
    return ImageFolderData(train, val, index.classes, stored_size, fingerprint)


__all__ = [
    "IMAGE_EXTENSIONS",
    "FolderIndex",
    "ImageFolderData",
    "ImageFolderError",
    "decode_split",
    "load_imagefolder",
    "scan_imagefolder",
]
