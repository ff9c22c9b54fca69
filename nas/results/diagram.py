"""A drawing of both cells of a genotype: Graphviz when `dot` is installed, else matplotlib.

Either way the result is a picture (PNG or SVG) a person can open, never only a .dot file.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from nas.errors import BadInput
from nas.inspect import state_name
from search_spaces import Cell, Genotype

FORMATS = (".png", ".svg")


def draw_genotype(genotype: Genotype, path: Path, title: str = "") -> Path:
    """Write the drawing to `path` atomically (temp file, then rename)."""
    if path.suffix.lower() not in FORMATS:
        raise BadInput(f"--diagram {path}: use a .png or .svg file name")
    if not path.parent.exists():
        raise BadInput(f"--diagram {path}: directory {path.parent} does not exist")
    fd, tmp_name = tempfile.mkstemp(suffix=path.suffix, dir=path.parent, prefix=".diagram-")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        if shutil.which("dot"):
            _draw_graphviz(genotype, tmp, title)
        else:
            _draw_matplotlib(genotype, tmp, title, tmp.suffix.lstrip("."))
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def genotype_svg(genotype: Genotype, title: str = "") -> str:
    """The same drawing as an SVG document in a string, to inline in an HTML page."""
    if shutil.which("dot"):
        return subprocess.run(["dot", "-Tsvg"], input=_dot_source(genotype, title), text=True,
                              check=True, capture_output=True).stdout
    buffer = io.StringIO()
    _draw_matplotlib(genotype, buffer, title, "svg")
    return buffer.getvalue()


def _dot_source(genotype: Genotype, title: str) -> str:
    lines = ["digraph G {", "rankdir=LR;", f'label="{title}"; labelloc=t;', "node [shape=box];"]
    for tag, name, cell in (("n", "Normal cell", genotype.normal), ("r", "Reduction cell",
                                                                     genotype.reduce)):
        lines.append(f'subgraph cluster_{tag} {{ label="{name}";')
        for i in range(2 + len(cell.blocks)):
            lines.append(f'{tag}{i} [label="{state_name(i)}"];')
        for k, block in enumerate(cell.blocks):
            for i, op in zip(block.inputs, block.ops, strict=True):
                lines.append(f'{tag}{i} -> {tag}{k + 2} [label="{op}"];')
        lines.append(f'{tag}out [label="concat", shape=ellipse];')
        for i in cell.output_states():
            lines.append(f"{tag}{i} -> {tag}out;")
        lines.append("}")
    lines.append("}")
    return "\n".join(lines)


def _draw_graphviz(genotype: Genotype, out: Path, title: str) -> None:
    fmt = out.suffix.lstrip(".")
    subprocess.run(
        ["dot", f"-T{fmt}", "-o", str(out)],
        input=_dot_source(genotype, title), text=True, check=True, capture_output=True,
    )


def _draw_cell(ax, cell: Cell, name: str) -> None:  # type: ignore[no-untyped-def]
    """Inputs on the left; each block on its own row, in a column by depth, with its two
    operations drawn as labelled boxes just before it; the concat node on the right."""
    depth = {0: 0, 1: 0}
    for k, block in enumerate(cell.blocks):
        depth[k + 2] = 1 + max(depth[i] for i in block.inputs)
    rows = len(cell.blocks)
    pos = {0: (0.0, -0.25 * rows * 2.2), 1: (0.0, -0.75 * rows * 2.2)}
    for k in range(rows):
        pos[k + 2] = (depth[k + 2] * 5.0, -k * 2.2 - 1.1)
    pos[-1] = ((max(depth.values()) + 1) * 5.0, pos[0][1] / 2 + pos[1][1] / 2)
    arrow = {"arrowstyle": "-|>", "color": "#555", "lw": 0.9, "shrinkA": 10, "shrinkB": 10}
    box = {"ha": "center", "va": "center"}
    for k, block in enumerate(cell.blocks):
        bx, by = pos[k + 2]
        for j, (i, op) in enumerate(zip(block.inputs, block.ops, strict=True)):
            ox, oy = bx - 2.2, by + (0.45 if j == 0 else -0.45)
            ax.annotate("", (ox, oy), pos[i], arrowprops=arrow)
            ax.annotate("", (bx, by), (ox, oy), arrowprops={**arrow, "shrinkA": 30})
            ax.text(ox, oy, op, fontsize=7, **box,
                    bbox={"boxstyle": "round,pad=0.25", "fc": "#fff2cc", "ec": "#b08d00"})
    for i in cell.output_states():
        ax.annotate("", pos[-1], pos[i], arrowprops={**arrow, "color": "#b35900", "lw": 0.8})
    for state, (x, y) in pos.items():
        if state == -1:
            label, color = "concat", "#fde4c8"
        elif state < 2:
            label, color = state_name(state), "#d9ead3"
        else:
            label, color = f"{state_name(state)} ({cell.blocks[state - 2].combine})", "#dae8fc"
        ax.text(x, y, label, fontsize=9, **box,
                bbox={"boxstyle": "round,pad=0.4", "fc": color, "ec": "#333"})
    xs = [x for x, _ in pos.values()]
    ys = [y for _, y in pos.values()]
    ax.set_xlim(min(xs) - 1.5, max(xs) + 1.5)
    ax.set_ylim(min(ys) - 1.2, max(ys) + 1.2)
    ax.set_title(name)
    ax.axis("off")


def _draw_matplotlib(genotype: Genotype, out: Path | io.StringIO, title: str, fmt: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(18, 7))
    _draw_cell(axes[0], genotype.normal, "Normal cell")
    _draw_cell(axes[1], genotype.reduce, "Reduction cell")
    fig.suptitle(f"{title}  (key {genotype.key()})" if title else genotype.key())
    fig.tight_layout()
    fig.savefig(out, dpi=110, format=fmt)
    plt.close(fig)
