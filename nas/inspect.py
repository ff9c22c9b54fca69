"""Cost of a REF at a layout, and genotype tables: what `nas inspect` and `nas show` print."""

from __future__ import annotations

from typing import Any

import torch
from rich.table import Table

from search_spaces import Arch, Genotype, count_cost


def inspect_arch(arch: Arch, **size: Any) -> dict[str, Any]:
    """Build on the meta device (no memory, no compute) and count params and mult-adds."""
    settings = arch.resolve(**{k: v for k, v in size.items() if v is not None})
    with torch.device("meta"):
        model = arch.build(**settings)
        cost = count_cost(model, settings["image_size"])
    return {
        "arch": arch.name,
        "kind": arch.kind,
        "layout": settings["layout"],
        "cells": settings.get("cells"),
        "filters": settings.get("filters"),
        "width": settings.get("width"),
        "image_size": settings["image_size"],
        "num_classes": settings["num_classes"],
        "params": cost.params,
        "mult_adds": cost.mult_adds,
        "key": arch.genotype.key() if arch.genotype is not None else None,
    }


def genotype_table(genotype: Genotype) -> list[Table]:
    """One rich table per cell: each block's two branches, the combination, the output."""
    tables = []
    for title, cell in (("Normal cell", genotype.normal), ("Reduction cell", genotype.reduce)):
        table = Table("block", "input 1", "op 1", "input 2", "op 2", "combine", title=title)
        for k, block in enumerate(cell.blocks):
            table.add_row(
                f"b{k}", state_name(block.inputs[0]), block.ops[0],
                state_name(block.inputs[1]), block.ops[1], block.combine,
            )
        outputs = ", ".join(state_name(i) for i in cell.output_states())
        table.caption = f"output = concat({outputs})"
        tables.append(table)
    return tables


def state_name(index: int) -> str:
    """Human names of cell states: h_{i-1}, h_i, then block outputs b0, b1, ..."""
    return {0: "h_{i-1}", 1: "h_i"}.get(index, f"b{index - 2}")
