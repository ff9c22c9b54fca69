"""Batch augmentation on the training device: whole uint8 batches in, normalised floats out.

No PIL and no per-image Python: a random pad-4 crop is two `gather`s, a flip is one
`where`, cutout is one mask, so the pipeline costs a few percent of a training step.
"""

from __future__ import annotations

from functools import cache

import torch

# CIFAR-10 channel statistics of the training images, on the 0..255 scale.
MEAN = (125.31, 122.95, 113.87)
STD = (62.99, 62.09, 66.70)


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
def _stats(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, 1/std) on `device`, made once: building them from Python lists every step
    would be two host-to-device copies per batch on a GPU."""
    mean = torch.tensor(MEAN, device=device).view(1, 3, 1, 1)
    return mean, 1.0 / torch.tensor(STD, device=device).view(1, 3, 1, 1)


def normalize(x: torch.Tensor, dtype: torch.dtype = torch.float32,
              channels_last: bool = False) -> torch.Tensor:
    """uint8 -> zero-mean, unit-variance floats of `dtype`, in the model's memory format."""
    mean, inv_std = _stats(x.device)
    out = (x.float() - mean) * inv_std
    if channels_last:
        out = out.contiguous(memory_format=torch.channels_last)
    return out.to(dtype)
