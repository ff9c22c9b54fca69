"""The one data-source protocol: uint8 images + labels, decoded once, cached as safetensors,
split deterministically. CIFAR-10 (`workers.data`) and ImageFolder (`workers.imagefolder`)
are its two implementations; everything they share lives here once: the split type, the
image-extension list, the cache directory rule, the atomic write and the tensor cache.

Why uint8 and a cache: decoding is the expensive part of an input pipeline, so it happens
once per data directory; augmentation runs later on whole batches on the training device
(`workers.augment`).
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch

from search_spaces.errors import InputError

# Every file ending a data source decodes (lower case; PIL and libjpeg read them all).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


class DataError(InputError):
    """Data that cannot be loaded; the message names the directory and what to fix."""


@dataclass(frozen=True)
class Split:
    """Images and labels of one split, kept as compact tensors (augment on the device)."""

    x: torch.Tensor  # uint8 [N, 3, S, S]
    y: torch.Tensor  # int64 [N], class index

    def __len__(self) -> int:
        return int(self.y.shape[0])

    @property
    def images(self) -> torch.Tensor:
        """Alias of `x` (the name the Ray trial code uses)."""
        return self.x

    @property
    def labels(self) -> torch.Tensor:
        """Alias of `y`."""
        return self.y

    def shard(self, rank: int, world: int) -> Split:
        """Every `world`-th image from `rank`: one process's share of a distributed pass."""
        return self if world == 1 else Split(self.x[rank::world], self.y[rank::world])


class DataSource(Protocol):
    """What a training data set offers every trainer, whatever its files look like."""

    @property
    def train(self) -> Split: ...  # what the weights are fitted on

    @property
    def val(self) -> Split: ...  # held out: what a run is scored on

    @property
    def classes(self) -> tuple[str, ...]: ...  # label i is classes[i]

    @property
    def fingerprint(self) -> str: ...  # equal data <=> equal fingerprint

    @property
    def mean(self) -> tuple[float, float, float]: ...  # per channel, 0..255 scale

    @property
    def std(self) -> tuple[float, float, float]: ...


def is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def image_files(folder: Path) -> list[tuple[Path, os.stat_result]]:
    """The images of one class folder, sorted by name, with their stat.

    A name that looks like an image but is not a non-empty regular file is bad input named
    in one line: a dangling or looping symlink, a FIFO (reading it would hang for ever), a
    device, a directory, a zero-byte file. Skipping it silently would train on other data
    than the user thinks."""
    found = []
    with os.scandir(folder) as entries:
        for entry in entries:
            if not is_image(entry.name):
                continue
            path = Path(entry.path)
            try:
                info = os.stat(path)  # follows links: dangling or looping ones raise here
            except OSError as exc:
                raise DataError(f"{path} cannot be read ({exc.strerror}); fix or remove the "
                                "link") from None
            if not stat.S_ISREG(info.st_mode):
                raise DataError(f"{path} is not a regular file (a FIFO, device or directory "
                                "named like an image); remove it")
            if info.st_size == 0:
                raise DataError(f"{path} is empty (0 bytes); replace or delete it")
            found.append((path, info))
    return sorted(found, key=lambda item: item[0].name)


def concat(*splits: Split) -> Split:
    return Split(torch.cat([s.x for s in splits]), torch.cat([s.y for s in splits]))


def subset(split: Split, n: int, seed: int) -> Split:
    """`n` images drawn without replacement, the same ones for the same seed."""
    if n < 1:
        raise DataError(f"a subset needs at least one image (got {n})")
    if n >= len(split):
        return split
    gen = torch.Generator().manual_seed(int(seed))
    index = torch.randperm(len(split), generator=gen)[:n].sort().values
    return Split(split.x[index].contiguous(), split.y[index].contiguous())


def balanced_subset(labels: torch.Tensor, limit: int, seed: int) -> torch.Tensor:
    """`limit` indices spread evenly over the classes (round robin in a seeded order)."""
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(labels), generator=gen)
    by_class: dict[int, list[int]] = {}
    for i in order.tolist():
        by_class.setdefault(int(labels[i]), []).append(i)
    picked: list[int] = []
    queues = [iter(v) for _, v in sorted(by_class.items())]
    while len(picked) < limit and queues:
        alive = []
        for q in queues:
            i = next(q, None)
            if i is not None:
                picked.append(i)
                alive.append(q)
                if len(picked) == limit:
                    break
        queues = alive
    return torch.tensor(sorted(picked), dtype=torch.int64)


def default_cache_dir() -> Path:
    """env NAS_CACHE_DIR, else $XDG_CACHE_HOME/nas, else ~/.cache/nas."""
    value = os.environ.get("NAS_CACHE_DIR")
    if value:
        return Path(value)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "nas"


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Write through a temporary file in the same directory, then rename: never half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def read_cache(path: Path, version: str,
               keys: set[str]) -> tuple[dict[str, torch.Tensor], dict[str, str]] | None:
    """(tensors, metadata) of a cache file of this `version` holding `keys`; None when absent
    or damaged (a damaged cache is rebuilt, not trusted)."""
    from safetensors import safe_open

    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118
    except Exception:
        return None
    if meta.get("version") != version or set(tensors) != keys:
        return None
    return tensors, meta


def write_cache(path: Path, tensors: dict[str, torch.Tensor], version: str,
                metadata: dict[str, str]) -> None:
    """Atomic; an unwritable cache directory only costs speed."""
    from safetensors.torch import save_file

    contiguous = {k: v.contiguous() for k, v in tensors.items()}
    meta = {**metadata, "version": version}
    with contextlib.suppress(OSError):
        atomic_write(path, lambda tmp: save_file(contiguous, str(tmp), metadata=meta))


__all__ = [
    "IMAGE_EXTENSIONS",
    "DataError",
    "DataSource",
    "Split",
    "atomic_write",
    "balanced_subset",
    "concat",
    "default_cache_dir",
    "image_files",
    "is_image",
    "read_cache",
    "subset",
    "write_cache",
]
