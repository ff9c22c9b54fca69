"""Cost of a REF at a layout, and genotype tables: what `nas inspect` and `nas show` print."""

from __future__ import annotations

from typing import Any

import torch
from rich.table import Table

from nas.preflight import check_cost
from search_spaces import Arch, Genotype, count_mult_adds, count_params


def meta_cost(arch: Arch, settings: dict[str, Any]) -> tuple[int, int, int]:
    """(params, mult-adds, bytes of every tensor) counted on the meta device (no memory, no
    compute); a network beyond the documented caps is refused here, before anything is
    allocated for real."""
    with torch.device("meta"):
        model = arch.build(**settings)
        params = count_params(model)
        what = f"{arch.name} at {_size(settings)}"
        check_cost(params, 0, what)
        mult_adds = count_mult_adds(model, settings["image_size"])
        check_cost(params, mult_adds, what)
    tensors = [*model.parameters(), *model.buffers()]
    return params, mult_adds, sum(t.numel() * t.element_size() for t in tensors)


def _size(settings: dict[str, Any]) -> str:
    size = (f"{settings['cells']}@{settings['filters']}" if settings.get("cells") is not None
            else f"width {settings.get('width', 1.0):g}")
    stem = ", stem stride 2" if settings.get("stem_stride", 1) != 1 else ""
    return f"{settings['layout']} {size}{stem}, {settings['image_size']}px"


def inspect_arch(arch: Arch, **size: Any) -> dict[str, Any]:
    """Build on the meta device (no memory, no compute) and count params and mult-adds."""
    settings = arch.resolve(**{k: v for k, v in size.items() if v is not None})
    params, mult_adds, _ = meta_cost(arch, settings)
    return {
        "arch": arch.name,
        "kind": arch.kind,
        "layout": settings["layout"],
        "cells": settings.get("cells"),
        "filters": settings.get("filters"),
        "stem_stride": settings.get("stem_stride"),
        "width": settings.get("width"),
        "image_size": settings["image_size"],
        "num_classes": settings["num_classes"],
        "params": params,
        "mult_adds": mult_adds,
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
