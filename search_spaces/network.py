"""The one builder: a `Genotype` plus a `NetworkConfig` becomes a CIFAR or ImageNet network.

N@F naming (Zoph et al., 2018): N normal cells per stack, F channels in the penultimate
layer. CIFAR layout: 3x3 conv stem, [N normal, reduction, N normal, reduction, N normal];
the paper's stem keeps 32x32 (stride 1), `stem_stride=2` runs every cell at a quarter of the
pixels (a macro decision the search may take: on CPUs it buys about 4x the images per second).
N = 0 leaves the stem and the two reduction cells: the shallowest network of the skeleton,
which on 2 CPU cores trains about twice the images per second of N = 1 at similar mult-adds
(docs/results/comparison.md).
ImageNet layout: stride-2 3x3 conv stem, two reduction cells as stem, then the same stacks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

import torch
from torch import nn

from search_spaces.errors import InputError
from search_spaces.genotype import Cell, Genotype, GenotypeError
from search_spaces.ops import OPS, FactorizedReduce, Identity, ReLUConvBN

Layout = Literal["cifar", "imagenet"]
LAYOUTS: tuple[str, ...] = ("cifar", "imagenet")
# Total downsampling of each layout: the smallest input it accepts.
MIN_IMAGE_SIZE = {"cifar": 8, "imagenet": 32}
# Upper bounds, so that even counting the cost on the meta device stays cheap (a second or
# two on 2 cores). Published cells use N <= 7 and F <= 4032 (NASNet-A Large 6@4032). F is
# only bounded loosely: its cost on the meta device is shape arithmetic, and the caps on
# parameters, mult-adds and memory (nas.preflight) refuse a large F before allocation.
MAX_CELLS = 32
MAX_FILTERS = 10_000_000
MAX_IMAGE_SIZE = 2048
MAX_CLASSES = 100_000


class ConfigError(InputError):
    """A network configuration that cannot be built; the message says what would work."""


@dataclass(frozen=True)
class NetworkConfig:
    """How to stack cells. Defaults are NASNet-A 6@768 on CIFAR-10."""

    layout: Layout = "cifar"
    cells: int = 6  # N: normal cells per stack; 0 leaves only the reduction cells
    filters: int = 768  # F: channels of the penultimate layer
    image_size: int = 32  # input height = width, pixels
    num_classes: int = 10
    stem_multiplier: float | None = None  # stem width; None: 3 x C (CIFAR), 32 x 1 (ImageNet)
    stem_stride: int = 1  # CIFAR stem's stride: 1 (the paper) or 2; the ImageNet stem is fixed
    auxiliary: bool = False  # auxiliary head after the last reduction (~2/3 depth)
    drop_path: float = 0.0  # ScheduledDropPath probability reached at the end of training
    dropout: float = 0.0  # before the classifier

    def validate(self) -> NetworkConfig:
        if self.layout not in LAYOUTS:
            raise ConfigError(f"unknown layout {self.layout!r}; use cifar or imagenet")
        if self.cells < 0:
            raise ConfigError(f"--cells must be at least 0 (got {self.cells})")
        if self.cells > MAX_CELLS:
            raise ConfigError(f"--cells must be at most {MAX_CELLS} (got {self.cells:,})")
        if self.filters < 24:
            raise ConfigError(f"--filters must be at least 24 (got {self.filters})")
        if self.filters > MAX_FILTERS:
            raise ConfigError(f"--filters must be at most {MAX_FILTERS:,} (got {self.filters:,})")
        if self.stem_stride not in (1, 2):
            raise ConfigError(f"stem stride must be 1 or 2 (got {self.stem_stride})")
        if self.layout != "cifar" and self.stem_stride != 1:
            raise ConfigError("stem stride 2 applies to the cifar layout only; the imagenet "
                              "layout has its own stride-2 stem")
        low = MIN_IMAGE_SIZE[self.layout] * self.stem_stride
        if self.image_size < low:
            raise ConfigError(
                f"--image-size {self.image_size} is too small for the {self.layout} layout, "
                f"which downsamples {low}x; use at least {low}"
            )
        if self.image_size > MAX_IMAGE_SIZE:
            raise ConfigError(
                f"--image-size must be at most {MAX_IMAGE_SIZE} (got {self.image_size})")
        if self.num_classes < 1:
            raise ConfigError(f"--classes must be at least 1 (got {self.num_classes})")
        if self.num_classes > MAX_CLASSES:
            raise ConfigError(
                f"--classes must be at most {MAX_CLASSES:,} (got {self.num_classes:,})")
        if self.stem_multiplier is not None and not 0 < self.stem_multiplier <= 64:
            raise ConfigError(f"stem_multiplier must lie in (0, 64] (got {self.stem_multiplier})")
        if not 0.0 <= self.drop_path < 1.0 or not 0.0 <= self.dropout < 1.0:
            raise ConfigError("drop_path and dropout must lie in [0, 1)")
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def with_(self, **changes: Any) -> NetworkConfig:
        """A copy with the given fields changed; None values are ignored (unset CLI flags)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


def drop_path(x: torch.Tensor, prob: float) -> torch.Tensor:
    """Zero whole samples of a branch with probability `prob`, rescaling the rest."""
    keep = 1.0 - prob
    mask = torch.empty(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype).bernoulli_(keep)
    return x * mask / keep


def _units(cell: Cell, state: int) -> int:
    """Channels of a state in units of C: 2 for a concat block, else 1."""
    return 2 if state >= 2 and cell.blocks[state - 2].combine == "concat" else 1


class CellModule(nn.Module):
    """One Normal or Reduction cell built from a `Cell` description."""

    def __init__(
        self, cell: Cell, c_pp: int, c_p: int, c: int, reduction: bool, reduction_prev: bool
    ) -> None:
        super().__init__()
        self.cell = cell
        self.reduction = reduction
        self.channels = c
        # A cell input that no block reads (and the output leaves out) gets no 1x1: on 2 CPU
        # cores that dead projection cost a one- or two-block cell 15-25% of its step.
        read = {i for b in cell.blocks for i in b.inputs} | set(cell.output_states())
        self.pre0: nn.Module | None = None
        self.pre1: nn.Module | None = None
        if 0 in read:
            self.pre0 = FactorizedReduce(c_pp, c, True) if reduction_prev else ReLUConvBN(
                c_pp, c, 1, 1, True)
        if 1 in read:
            self.pre1 = ReLUConvBN(c_p, c, 1, 1, True)
        # A concat block's output has 2C channels; a 1x1 brings it back to C before an op.
        wide = {i for b in cell.blocks for i in b.inputs if _units(cell, i) == 2}
        self.narrow = nn.ModuleDict({str(i): ReLUConvBN(2 * c, c, 1, 1, True) for i in wide})
        self.ops = nn.ModuleList()
        for block in cell.blocks:
            for i, name in zip(block.inputs, block.ops, strict=True):
                stride = 2 if reduction and i < 2 else 1
                self.ops.append(OPS[name](c, stride, True))
        self.out_channels = c * sum(_units(cell, i) for i in cell.output_states())

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, drop_prob: float) -> torch.Tensor:
        states = [pre(s) if pre is not None else s for pre, s in ((self.pre0, s0), (self.pre1, s1))]
        for k, block in enumerate(self.cell.blocks):
            branches = []
            for j, i in enumerate(block.inputs):
                x = states[i]
                if str(i) in self.narrow:
                    x = self.narrow[str(i)](x)
                op = self.ops[2 * k + j]
                y = op(x)
                if self.training and drop_prob > 0 and not isinstance(op, Identity):
                    y = drop_path(y, drop_prob)
                branches.append(y)
            if block.combine == "add":
                states.append(branches[0] + branches[1])
            else:
                states.append(torch.cat(branches, dim=1))
        return torch.cat([states[i] for i in self.cell.output_states()], dim=1)


class AuxiliaryHead(nn.Module):
    """Auxiliary classifier at ~2/3 depth (loss weight 0.4 in training); excluded from cost."""

    def __init__(self, c_in: int, num_classes: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.AdaptiveAvgPool2d(2),
            nn.Conv2d(c_in, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(inplace=True),
            nn.Conv2d(128, 768, 2, bias=False),
            nn.BatchNorm2d(768),
            nn.ReLU(inplace=True),
        )
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


class Network(nn.Module):
    """A stack of cells. `forward` returns logits; in training with an auxiliary head the
    auxiliary logits of the last call are in `aux_logits`."""

    def __init__(self, genotype: Genotype, config: NetworkConfig) -> None:
        super().__init__()
        config.validate()
        _check_reduction_outputs(genotype)
        self.genotype = genotype
        self.config = config
        self.drop_path_prob = 0.0
        self.aux_logits: torch.Tensor | None = None
        units = sum(_units(genotype.normal, i) for i in genotype.normal.output_states())
        c = max(2, round(config.filters / (4 * units)))  # FactorizedReduce needs 2
        n = config.cells
        stacks = [(c, False)] * n + [(2 * c, True)] + [(2 * c, False)] * n
        stacks += [(4 * c, True)] + [(4 * c, False)] * n
        if config.layout == "cifar":
            stem_c = round((config.stem_multiplier or 3.0) * c)
            self.stem = nn.Sequential(
                nn.Conv2d(3, stem_c, 3, stride=config.stem_stride, padding=1, bias=False),
                nn.BatchNorm2d(stem_c),
            )
        else:
            stem_c = round(32 * (config.stem_multiplier or 1.0))
            self.stem = nn.Sequential(
                nn.Conv2d(3, stem_c, 3, stride=2, bias=False), nn.BatchNorm2d(stem_c)
            )
            stacks = [(max(2, round(c / 4)), True), (max(2, round(c / 2)), True), *stacks]
        self.cells = nn.ModuleList()
        c_pp, c_p, reduction_prev = stem_c, stem_c, False
        self.aux_after = -1
        for index, (c_cell, reduction) in enumerate(stacks):
            cell = genotype.reduce if reduction else genotype.normal
            module = CellModule(cell, c_pp, c_p, c_cell, reduction, reduction_prev)
            self.cells.append(module)
            c_pp, c_p, reduction_prev = c_p, module.out_channels, reduction
            if reduction:
                self.aux_after = index  # the last reduction: about 2/3 of the depth
        self.aux_head = (
            AuxiliaryHead(self.cells[self.aux_after].out_channels, config.num_classes)
            if config.auxiliary
            else None
        )
        self.num_features = c_p
        self.head = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Dropout(config.dropout),
            nn.Linear(c_p, config.num_classes),
        )

    def set_progress(self, fraction: float) -> None:
        """ScheduledDropPath: the drop probability grows linearly with training progress."""
        self.drop_path_prob = self.config.drop_path * min(max(fraction, 0.0), 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s0 = s1 = self.stem(x)
        for index, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
            if index == self.aux_after and self.aux_head is not None and self.training:
                self.aux_logits = self.aux_head(s1)
        return self.head(s1)


def _check_reduction_outputs(genotype: Genotype) -> None:
    bad = [i for i in genotype.reduce.output_states() if i < 2]
    if bad:
        raise GenotypeError(
            f"reduction cell output list names input state {bad[0]}, which is not reduced; "
            "list block outputs (states 2 and up) only"
        )


def build_network(genotype: Genotype, config: NetworkConfig | None = None) -> Network:
    """The single way a genotype becomes a network."""
    return Network(genotype, config or NetworkConfig())
