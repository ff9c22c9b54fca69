"""Batch augmentation on the training device: whole uint8 batches in, normalised floats out.

No PIL and no per-image Python: a random pad-4 crop is two `gather`s, a flip is one
`where`, cutout is one mask, RandomResizedCrop + flip is one `grid_sample`, so the pipeline
costs a few percent of a training step. A `View` is what the training loop sees: the
training view (random) and the evaluation view (fixed) of a uint8 batch, normalised with
the data's own statistics. `CropFlip` is CIFAR's, `ResizedCrop` ImageNet's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from typing import Protocol

import torch
import torch.nn.functional as F

from workers.source import DataError

Stats = tuple[float, float, float]
# Channel statistics of the training images, on the 0..255 scale.
CIFAR10_MEAN: Stats = (125.31, 122.95, 113.87)
CIFAR10_STD: Stats = (62.99, 62.09, 66.70)
IMAGENET_MEAN: Stats = (123.675, 116.28, 103.53)  # torchvision's (0.485, 0.456, 0.406) x 255
IMAGENET_STD: Stats = (58.395, 57.12, 57.375)  # (0.229, 0.224, 0.225) x 255
MEAN, STD = CIFAR10_MEAN, CIFAR10_STD  # the default: CIFAR-10


def random_crop(x: torch.Tensor, pad: int,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Pad with zeros by `pad` pixels and crop back at a random offset, per image."""
    if pad <= 0:
        return x
    b, c, h, w = x.shape
    padded = x.new_zeros(b, c, h + 2 * pad, w + 2 * pad)
    padded[:, :, pad:pad + h, pad:pad + w] = x
    dy = torch.randint(0, 2 * pad + 1, (b,), device=x.device, generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (b,), device=x.device, generator=generator)
    rows = (dy[:, None] + torch.arange(h, device=x.device)).view(b, 1, h, 1)
    cols = (dx[:, None] + torch.arange(w, device=x.device)).view(b, 1, 1, w)
    out = padded.gather(2, rows.expand(b, c, h, w + 2 * pad))
    return out.gather(3, cols.expand(b, c, h, w))


def random_flip(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Mirror a random half of the batch left-right."""
    flip = torch.rand(x.shape[0], device=x.device, generator=generator) < 0.5
    return torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)


def cutout(x: torch.Tensor, size: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Zero one `size` x `size` square per image (clipped at the border), centre uniform."""
    if size <= 0:
        return x
    b, _, h, w = x.shape
    cy = torch.randint(0, h, (b, 1, 1), device=x.device, generator=generator)
    cx = torch.randint(0, w, (b, 1, 1), device=x.device, generator=generator)
    ys = torch.arange(h, device=x.device).view(1, h, 1)
    xs = torch.arange(w, device=x.device).view(1, 1, w)
    top, left = cy - size // 2, cx - size // 2
    inside = (ys >= top) & (ys < top + size) & (xs >= left) & (xs < left + size)
    return x.masked_fill(inside.unsqueeze(1), 0)


def augment(x: torch.Tensor, pad: int = 4, flip: bool = True, cutout_size: int = 0,
            generator: torch.Generator | None = None) -> torch.Tensor:
    """Crop, flip and cutout on a uint8 batch [B, 3, H, W]; returns uint8 of the same shape."""
    x = random_crop(x, pad, generator)
    if flip:
        x = random_flip(x, generator)
    return cutout(x, cutout_size, generator)


@cache
def _stats(device: torch.device, mean: Stats, std: Stats) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, 1/std) on `device`, made once per device and statistics: building them from
    Python tuples every step would be two host-to-device copies per batch on a GPU."""
    m = torch.tensor(mean, device=device).view(1, 3, 1, 1)
    return m, 1.0 / torch.tensor(std, device=device).view(1, 3, 1, 1)


def normalize(x: torch.Tensor, dtype: torch.dtype = torch.float32,
              channels_last: bool = False, mean: Stats = CIFAR10_MEAN,
              std: Stats = CIFAR10_STD) -> torch.Tensor:
    """uint8 (or 0..255 float) -> zero-mean, unit-variance floats of `dtype`, in the model's
    memory format."""
    m, inv_std = _stats(x.device, mean, std)
    out = (x.float() - m) * inv_std
    if channels_last:
        out = out.contiguous(memory_format=torch.channels_last)
    return out.to(dtype)


def random_resized_crop(
    x: torch.Tensor,
    size: int,
    generator: torch.Generator,
    scale: tuple[float, float] = (0.25, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    flip: bool = True,
    mean: Stats = IMAGENET_MEAN,
    std: Stats = IMAGENET_STD,
) -> torch.Tensor:
    """RandomResizedCrop (+ horizontal flip) of a whole uint8 batch -> normalised float.

    Each image gets its own box (area fraction in `scale`, aspect ratio in `ratio`, clipped
    to the image) and flip, all applied by one bilinear `grid_sample`. The random numbers
    are drawn on the generator's device, so a run repeats exactly for a seed.
    """
    b, where = x.shape[0], generator.device
    area = torch.empty(b, device=where).uniform_(scale[0], scale[1], generator=generator)
    log_r = torch.empty(b, device=where).uniform_(math.log(ratio[0]), math.log(ratio[1]),
                                                  generator=generator)
    aspect = torch.exp(log_r)
    w = torch.sqrt(area * aspect).clamp(max=1.0)  # box width as a fraction of the side
    h = torch.sqrt(area / aspect).clamp(max=1.0)
    cx = (torch.rand(b, device=where, generator=generator) * 2 - 1) * (1 - w)  # -1..1 coords
    cy = (torch.rand(b, device=where, generator=generator) * 2 - 1) * (1 - h)
    sign = torch.ones(b, device=where)
    if flip:
        sign = torch.where(torch.rand(b, device=where, generator=generator) < 0.5, -1.0, 1.0)
    theta = torch.zeros(b, 2, 3, device=where)
    theta[:, 0, 0] = w * sign
    theta[:, 0, 2] = cx
    theta[:, 1, 1] = h
    theta[:, 1, 2] = cy
    grid = F.affine_grid(theta.to(x.device), [b, 3, size, size], align_corners=False)
    return F.grid_sample(normalize(x, mean=mean, std=std), grid, mode="bilinear",
                         padding_mode="reflection", align_corners=False)


def center_crop(x: torch.Tensor, size: int, mean: Stats = IMAGENET_MEAN,
                std: Stats = IMAGENET_STD) -> torch.Tensor:
    """The evaluation view of stored images: their centre `size` crop, normalised."""
    s = x.shape[-1]
    if size > s:
        raise DataError(f"image size {size} is larger than the stored size {s}")
    top = (s - size) // 2
    return normalize(x[..., top:top + size, top:top + size], mean=mean, std=std)


class View(Protocol):
    """How the training loop sees a uint8 batch [B, 3, S, S]: normalised floats."""

    def size(self, stored: int) -> int:
        """The side of the images the network gets from stored images of side `stored`."""
        ...

    def train(self, x: torch.Tensor, generator: torch.Generator,
              channels_last: bool = False) -> torch.Tensor: ...

    def eval(self, x: torch.Tensor, channels_last: bool = False) -> torch.Tensor: ...


@dataclass(frozen=True)
class CropFlip:
    """CIFAR's view: pad-and-crop, flip, optional cutout at the stored size."""

    pad: int = 4  # pixels; 0 = no crop
    flip: bool = True
    cutout: int = 0  # side of the square; 0 = off
    mean: Stats = CIFAR10_MEAN
    std: Stats = CIFAR10_STD

    def size(self, stored: int) -> int:
        return stored

    def train(self, x: torch.Tensor, generator: torch.Generator,
              channels_last: bool = False) -> torch.Tensor:
        x = augment(x, self.pad, self.flip, self.cutout, generator)
        return normalize(x, channels_last=channels_last, mean=self.mean, std=self.std)

    def eval(self, x: torch.Tensor, channels_last: bool = False) -> torch.Tensor:
        return normalize(x, channels_last=channels_last, mean=self.mean, std=self.std)


@dataclass(frozen=True)
class ResizedCrop:
    """ImageNet's view: RandomResizedCrop + flip to `side` for training, the centre crop of
    the (larger) stored image for evaluation."""

    side: int  # pixels the network sees
    min_scale: float = 0.25  # smallest area fraction of a crop
    flip: bool = True
    mean: Stats = IMAGENET_MEAN
    std: Stats = IMAGENET_STD

    def size(self, stored: int) -> int:
        return self.side

    def train(self, x: torch.Tensor, generator: torch.Generator,
              channels_last: bool = False) -> torch.Tensor:
        out = random_resized_crop(x, self.side, generator, (self.min_scale, 1.0),
                                  flip=self.flip, mean=self.mean, std=self.std)
        return out.contiguous(memory_format=torch.channels_last) if channels_last else out

    def eval(self, x: torch.Tensor, channels_last: bool = False) -> torch.Tensor:
        out = center_crop(x, self.side, self.mean, self.std)
        return out.contiguous(memory_format=torch.channels_last) if channels_last else out
