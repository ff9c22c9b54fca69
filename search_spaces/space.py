"""The NASNet search space as 50 categorical decisions, and the one place they become a
`Genotype`: 2 cells x 5 blocks x (input 1, input 2, op 1, op 2, combine).

B, the blocks per cell, may be searched too (the macro decision `blocks`, 1..5, the same
for both cells): a candidate keeps the first B blocks of each cell's decisions. The paper
fixes B = 5; on 2 CPU cores a cell of one or two blocks of dense convolutions trains at
about twice ResNet-18/16's images per second (docs/results/comparison.md)."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from search_spaces.genotype import COMBINES, NUM_BLOCKS, Block, Cell, Genotype
from search_spaces.ops import SEARCHABLE_OPS

BLOCK_CHOICES: tuple[int, ...] = tuple(range(1, NUM_BLOCKS + 1))  # values `blocks` may take

CELLS = ("normal", "reduce")
FIELDS = ("input_1", "input_2", "op_1", "op_2", "combine")


def choices() -> dict[str, tuple[Any, ...]]:
    """Every decision's name and its choices, in a fixed order."""
    space: dict[str, tuple[Any, ...]] = {}
    for cell in CELLS:
        for k in range(NUM_BLOCKS):
            inputs = tuple(range(2 + k))
            space[f"{cell}_b{k}_input_1"] = inputs
            space[f"{cell}_b{k}_input_2"] = inputs
            space[f"{cell}_b{k}_op_1"] = SEARCHABLE_OPS
            space[f"{cell}_b{k}_op_2"] = SEARCHABLE_OPS
            space[f"{cell}_b{k}_combine"] = COMBINES
    return space


def genotype_from_params(params: Mapping[str, Any]) -> Genotype:
    """Turn the 50 decisions into a validated Genotype (searched cells: unused-states rule);
    with a `blocks` decision B, each cell keeps its first B blocks."""
    num_blocks = int(params.get("blocks", NUM_BLOCKS))
    if num_blocks not in BLOCK_CHOICES:
        raise ValueError(f"blocks must be one of {BLOCK_CHOICES} (got {num_blocks})")
    cells = []
    for cell in CELLS:
        blocks = tuple(
            Block(
                (int(params[f"{cell}_b{k}_input_1"]), int(params[f"{cell}_b{k}_input_2"])),
                (str(params[f"{cell}_b{k}_op_1"]), str(params[f"{cell}_b{k}_op_2"])),
                str(params[f"{cell}_b{k}_combine"]),
            )
            for k in range(num_blocks)
        )
        cells.append(Cell(blocks))
    return Genotype(*cells).validate(num_blocks)


def params_from_genotype(genotype: Genotype) -> dict[str, Any]:
    """The inverse, for enqueueing a known genotype into a study (a cell of fewer than 5
    blocks gives only its blocks' decisions, plus `blocks`)."""
    params: dict[str, Any] = {}
    if len(genotype.normal.blocks) != NUM_BLOCKS:
        params["blocks"] = len(genotype.normal.blocks)
    for name, cell in zip(CELLS, (genotype.normal, genotype.reduce), strict=True):
        for k, block in enumerate(cell.blocks):
            params[f"{name}_b{k}_input_1"], params[f"{name}_b{k}_input_2"] = block.inputs
            params[f"{name}_b{k}_op_1"], params[f"{name}_b{k}_op_2"] = block.ops
            params[f"{name}_b{k}_combine"] = block.combine
    return params


def sample_genotype(rng: random.Random) -> Genotype:
    """A uniformly random genotype from the space."""
    return genotype_from_params({k: rng.choice(v) for k, v in choices().items()})
