"""The operations registry: every op a cell can apply, as `name -> constructor(C, stride, affine)`.

Construction follows NASNet (Zoph et al., 2018): ReLU -> conv -> BatchNorm, separable
convolutions applied twice, pooling without a convolution, identity that becomes a
factorized reduction when it has to halve the resolution.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

OpFactory = Callable[[int, int, bool], nn.Module]

# The 13 NASNet operations, in the paper's order. Only these are sampled by the search.
SEARCHABLE_OPS: tuple[str, ...] = (
    "identity",
    "conv_1x3_3x1",
    "conv_1x7_7x1",
    "dil_conv_3x3",
    "avg_pool_3x3",
    "max_pool_3x3",
    "max_pool_5x5",
    "max_pool_7x7",
    "conv_1x1",
    "conv_3x3",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "sep_conv_7x7",
)


class ReLUConvBN(nn.Module):
    """ReLU -> conv -> BN, the NASNet building brick for every plain convolution."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel: int,
        stride: int,
        affine: bool,
        dilation: int = 1,
    ) -> None:
        super().__init__()
        padding = dilation * (kernel - 1) // 2
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride, padding, dilation=dilation, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class FactorizedConv(nn.Module):
    """1xk then kx1 convolution: a kxk receptive field at 2k weights per channel pair."""

    def __init__(self, c: int, kernel: int, stride: int, affine: bool) -> None:
        super().__init__()
        pad = kernel // 2
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(c, c, (1, kernel), (1, stride), (0, pad), bias=False),
            nn.Conv2d(c, c, (kernel, 1), (stride, 1), (pad, 0), bias=False),
            nn.BatchNorm2d(c, affine=affine),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class SepConv(nn.Module):
    """Depthwise-separable convolution applied twice, as NASNet does for its sep ops."""

    def __init__(self, c: int, kernel: int, stride: int, affine: bool, dilation: int = 1) -> None:
        super().__init__()
        pad = dilation * (kernel - 1) // 2
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(c, c, kernel, stride, pad, dilation=dilation, groups=c, bias=False),
            nn.Conv2d(c, c, 1, bias=False),
            nn.BatchNorm2d(c, affine=affine),
            nn.ReLU(inplace=False),
            nn.Conv2d(c, c, kernel, 1, pad, dilation=dilation, groups=c, bias=False),
            nn.Conv2d(c, c, 1, bias=False),
            nn.BatchNorm2d(c, affine=affine),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class DilSepConv(nn.Module):
    """DARTS's dilated separable convolution (applied once); not in the NASNet space."""

    def __init__(self, c: int, kernel: int, stride: int, affine: bool) -> None:
        super().__init__()
        pad = (kernel - 1)  # dilation 2
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(c, c, kernel, stride, pad, dilation=2, groups=c, bias=False),
            nn.Conv2d(c, c, 1, bias=False),
            nn.BatchNorm2d(c, affine=affine),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class FactorizedReduce(nn.Module):
    """Halve the resolution without losing pixels: two offset stride-2 1x1 paths, concatenated.

    Used for identity at stride 2 and to align a cell input that is one reduction behind.
    """

    def __init__(self, c_in: int, c_out: int, affine: bool) -> None:
        super().__init__()
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out - c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        shifted = nn.functional.pad(x[:, :, 1:, 1:], (0, 1, 0, 1))
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(shifted)], dim=1))


class Identity(nn.Module):
    """Identity; kept as a class so drop-path can recognise (and spare) it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _identity(c: int, stride: int, affine: bool) -> nn.Module:
    return Identity() if stride == 1 else FactorizedReduce(c, c, affine)


def _avg_pool(c: int, stride: int, affine: bool) -> nn.Module:
    return nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)


def _max_pool(kernel: int) -> OpFactory:
    return lambda c, stride, affine: nn.MaxPool2d(kernel, stride=stride, padding=kernel // 2)


OPS: dict[str, OpFactory] = {
    "identity": _identity,
    "conv_1x3_3x1": lambda c, s, a: FactorizedConv(c, 3, s, a),
    "conv_1x7_7x1": lambda c, s, a: FactorizedConv(c, 7, s, a),
    "dil_conv_3x3": lambda c, s, a: ReLUConvBN(c, c, 3, s, a, dilation=2),
    "avg_pool_3x3": _avg_pool,
    "max_pool_3x3": _max_pool(3),
    "max_pool_5x5": _max_pool(5),
    "max_pool_7x7": _max_pool(7),
    "conv_1x1": lambda c, s, a: ReLUConvBN(c, c, 1, s, a),
    "conv_3x3": lambda c, s, a: ReLUConvBN(c, c, 3, s, a),
    "sep_conv_3x3": lambda c, s, a: SepConv(c, 3, s, a),
    "sep_conv_5x5": lambda c, s, a: SepConv(c, 5, s, a),
    "sep_conv_7x7": lambda c, s, a: SepConv(c, 7, s, a),
    # Not searched: needed to express DARTS-space cells (DARTS calls them dil_conv_*).
    "dil_sep_conv_3x3": lambda c, s, a: DilSepConv(c, 3, s, a),
    "dil_sep_conv_5x5": lambda c, s, a: DilSepConv(c, 5, s, a),
}

assert set(SEARCHABLE_OPS) <= set(OPS)
