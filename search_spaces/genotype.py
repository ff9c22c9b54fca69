"""`Genotype`: an architecture as data (two cells of blocks), validated and canonically keyed.

State indices inside a cell: 0 = h_{i-1} (the cell before the previous one), 1 = h_i (the
previous cell), 2 + k = output of block k. A block may only read states that exist before it,
so a genotype cannot contain a cycle.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from search_spaces.errors import InputError

COMBINES: tuple[str, ...] = ("add", "concat")
NUM_BLOCKS = 5  # B in the NASNet search space
MAX_BLOCKS = 32  # refuse absurd genotypes before they allocate anything


class GenotypeError(InputError):
    """A genotype that cannot be built; the message names the problem and the fix."""


@dataclass(frozen=True)
class Block:
    """Two branches (input state, op) and how their results combine."""

    inputs: tuple[int, int]
    ops: tuple[str, str]
    combine: str = "add"

    def canonical(self) -> Block:
        """The same block with its two branches in a fixed order (they commute)."""
        branches = sorted(zip(self.inputs, self.ops, strict=True))
        return Block(
            (branches[0][0], branches[1][0]), (branches[0][1], branches[1][1]), self.combine
        )


@dataclass(frozen=True)
class Cell:
    """B blocks; `concat` lists the states concatenated into the output.

    `concat=None` means the NASNet rule for searched cells: every block output that no later
    block reads. Published cells carry an explicit list (NASNet-A also concatenates h_{i-1}).
    """

    blocks: tuple[Block, ...]
    concat: tuple[int, ...] | None = None

    def output_states(self) -> tuple[int, ...]:
        """The states concatenated into the cell output."""
        if self.concat is not None:
            return self.concat
        used = {i for block in self.blocks for i in block.inputs}
        return tuple(2 + k for k in range(len(self.blocks)) if 2 + k not in used)

    def validate(self, name: str, num_blocks: int | None = None) -> None:
        """Raise GenotypeError naming the first problem found."""
        from search_spaces.ops import OPS  # torch: only when a genotype is checked

        if not isinstance(self.blocks, tuple) or not self.blocks:
            raise GenotypeError(f"{name} cell has no blocks; give it {num_blocks or NUM_BLOCKS}")
        if num_blocks is not None and len(self.blocks) != num_blocks:
            raise GenotypeError(
                f"{name} cell has {len(self.blocks)} blocks; this search space needs {num_blocks}"
            )
        if len(self.blocks) > MAX_BLOCKS:
            raise GenotypeError(
                f"{name} cell has {len(self.blocks)} blocks; at most {MAX_BLOCKS} are allowed"
            )
        for k, block in enumerate(self.blocks):
            where = f"{name} cell block {k}"
            if len(block.inputs) != 2 or len(block.ops) != 2:
                raise GenotypeError(f"{where} needs exactly 2 inputs and 2 ops")
            for op in block.ops:
                if op not in OPS:
                    raise GenotypeError(
                        f"{where}: unknown op {op!r}; known ops: {', '.join(OPS)}"
                    )
            for i in block.inputs:
                if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < 2 + k:
                    raise GenotypeError(
                        f"{where}: input index {i!r} is out of range; "
                        f"block {k} may read states 0..{1 + k}"
                    )
            if block.combine not in COMBINES:
                raise GenotypeError(
                    f"{where}: unknown combine {block.combine!r}; use 'add' or 'concat'"
                )
        states = 2 + len(self.blocks)
        if self.concat is not None:
            if not self.concat:
                raise GenotypeError(f"{name} cell output list is empty")
            for i in self.concat:
                if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < states:
                    raise GenotypeError(
                        f"{name} cell output list names state {i!r}, which does not exist; "
                        f"states are 0..{states - 1}"
                    )
            if len(set(self.concat)) != len(self.concat):
                raise GenotypeError(f"{name} cell output list repeats a state")


@dataclass(frozen=True)
class Genotype:
    """A NASNet-style architecture: a Normal cell and a Reduction cell."""

    normal: Cell
    reduce: Cell

    def validate(self, num_blocks: int | None = None) -> Genotype:
        """Check every index, op and output list; return self so calls can chain."""
        self.normal.validate("normal", num_blocks)
        self.reduce.validate("reduction", num_blocks)
        return self

    def key(self) -> str:
        """A canonical hash: equal for cells that differ only in a block's branch order."""
        canon = {
            name: {
                "blocks": [_block_json(b.canonical()) for b in cell.blocks],
                "concat": sorted(cell.output_states()),
            }
            for name, cell in (("normal", self.normal), ("reduce", self.reduce))
        }
        text = json.dumps(canon, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form, as `nas show --json` prints it."""
        return {
            name: {
                "blocks": [_block_json(b) for b in cell.blocks],
                "concat": None if cell.concat is None else list(cell.concat),
            }
            for name, cell in (("normal", self.normal), ("reduce", self.reduce))
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: Any) -> Genotype:
        """Parse and validate; any malformation becomes a GenotypeError with its location."""
        if not isinstance(data, dict):
            raise GenotypeError("a genotype must be a JSON object with 'normal' and 'reduce'")
        if "genotype" in data and isinstance(data["genotype"], dict):
            data = data["genotype"]  # accept a checkpoint description or an export's JSON
        unknown = set(data) - {"normal", "reduce"}
        if unknown:
            raise GenotypeError(f"unknown genotype keys {sorted(unknown)}; use normal and reduce")
        cells = []
        for name in ("normal", "reduce"):
            if name not in data:
                raise GenotypeError(f"genotype is missing the {name!r} cell")
            cells.append(_cell_from_json(name, data[name]))
        return cls(*cells).validate()

    @classmethod
    def from_json(cls, text: str) -> Genotype:
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise GenotypeError(f"genotype is not valid JSON: {exc}") from None
        except ValueError:  # an integer of thousands of digits (Python's int parsing limit)
            raise GenotypeError("genotype holds an integer too long to be a state index or "
                                "count; indices are small whole numbers") from None
        return cls.from_dict(data)


def _block_json(block: Block) -> dict[str, Any]:
    return {"inputs": list(block.inputs), "ops": list(block.ops), "combine": block.combine}


def _cell_from_json(name: str, data: Any) -> Cell:
    if not isinstance(data, dict) or not isinstance(data.get("blocks"), list):
        raise GenotypeError(f"{name} cell must be an object with a 'blocks' list")
    unknown = set(data) - {"blocks", "concat"}
    if unknown:
        raise GenotypeError(f"{name} cell has unknown keys {sorted(unknown)}")
    if len(data["blocks"]) > MAX_BLOCKS:
        raise GenotypeError(f"{name} cell has {len(data['blocks'])} blocks; at most {MAX_BLOCKS}")
    blocks = []
    for k, raw in enumerate(data["blocks"]):
        where = f"{name} cell block {k}"
        if not isinstance(raw, dict) or set(raw) - {"inputs", "ops", "combine"}:
            raise GenotypeError(f"{where} must be an object with inputs, ops and combine")
        inputs, ops = raw.get("inputs"), raw.get("ops")
        if not (isinstance(inputs, list) and len(inputs) == 2):
            raise GenotypeError(f"{where}: 'inputs' must be a list of 2 state indices")
        if not (isinstance(ops, list) and len(ops) == 2 and all(isinstance(o, str) for o in ops)):
            raise GenotypeError(f"{where}: 'ops' must be a list of 2 op names")
        combine = raw.get("combine", "add")
        if not isinstance(combine, str):
            raise GenotypeError(f"{where}: 'combine' must be 'add' or 'concat'")
        blocks.append(Block((inputs[0], inputs[1]), (ops[0], ops[1]), combine))
    concat = data.get("concat")
    if concat is not None and not isinstance(concat, list):
        raise GenotypeError(f"{name} cell 'concat' must be a list of state indices or null")
    return Cell(tuple(blocks), None if concat is None else tuple(concat))
