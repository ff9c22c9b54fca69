"""Published cells, written as data. Indices: 0 = h_{i-1}, 1 = h_i, 2 + k = block k.

NASNet-A carries the TF/timm output lists (the Normal cell also concatenates h_{i-1}).
AmoebaNet-A (Real et al., 2019) and DARTS-V2 (Liu et al., 2019) are given as in the DARTS
release; DARTS's ``dil_conv`` is our ``dil_sep_conv``, AmoebaNet's ``conv_7x1_1x7`` our
``conv_1x7_7x1``, ``skip_connect`` our ``identity``.
"""

from __future__ import annotations

from search_spaces.genotype import Block, Cell, Genotype


def _cell(pairs: list[tuple[str, int]], concat: list[int]) -> Cell:
    """Build a cell from DARTS-style (op, input) pairs, two per block, all additions."""
    blocks = tuple(
        Block((pairs[i][1], pairs[i + 1][1]), (pairs[i][0], pairs[i + 1][0]), "add")
        for i in range(0, len(pairs), 2)
    )
    return Cell(blocks, tuple(concat))


NASNET_A = Genotype(
    normal=_cell(
        [
            ("sep_conv_5x5", 1), ("sep_conv_3x3", 0),
            ("sep_conv_5x5", 0), ("sep_conv_3x3", 0),
            ("avg_pool_3x3", 1), ("identity", 0),
            ("avg_pool_3x3", 0), ("avg_pool_3x3", 0),
            ("sep_conv_3x3", 1), ("identity", 1),
        ],
        [0, 2, 3, 4, 5, 6],
    ),
    reduce=_cell(
        [
            ("sep_conv_5x5", 1), ("sep_conv_7x7", 0),
            ("max_pool_3x3", 1), ("sep_conv_7x7", 0),
            ("avg_pool_3x3", 1), ("sep_conv_5x5", 0),
            ("identity", 3), ("avg_pool_3x3", 2),
            ("sep_conv_3x3", 2), ("max_pool_3x3", 1),
        ],
        [3, 4, 5, 6],
    ),
)

AMOEBANET_A = Genotype(
    normal=_cell(
        [
            ("avg_pool_3x3", 0), ("max_pool_3x3", 1),
            ("sep_conv_3x3", 0), ("sep_conv_5x5", 2),
            ("sep_conv_3x3", 0), ("avg_pool_3x3", 3),
            ("sep_conv_3x3", 1), ("identity", 1),
            ("identity", 0), ("avg_pool_3x3", 1),
        ],
        [4, 5, 6],
    ),
    reduce=_cell(
        [
            ("avg_pool_3x3", 0), ("sep_conv_3x3", 1),
            ("max_pool_3x3", 0), ("sep_conv_7x7", 2),
            ("sep_conv_7x7", 0), ("avg_pool_3x3", 1),
            ("max_pool_3x3", 0), ("max_pool_3x3", 1),
            ("conv_1x7_7x1", 0), ("sep_conv_3x3", 5),
        ],
        [3, 4, 6],
    ),
)

DARTS_V2 = Genotype(
    normal=_cell(
        [
            ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
            ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
            ("sep_conv_3x3", 1), ("identity", 0),
            ("identity", 0), ("dil_sep_conv_3x3", 2),
        ],
        [2, 3, 4, 5],
    ),
    reduce=_cell(
        [
            ("max_pool_3x3", 0), ("max_pool_3x3", 1),
            ("identity", 2), ("max_pool_3x3", 1),
            ("max_pool_3x3", 0), ("identity", 2),
            ("identity", 2), ("max_pool_3x3", 1),
        ],
        [2, 3, 4, 5],
    ),
)

# Checked by tests/test_search_spaces.py (validating here would import torch for the op
# names, and `nas list` must not).
PUBLISHED: dict[str, Genotype] = {
    "nasnet-a": NASNET_A,
    "amoebanet-a": AMOEBANET_A,
    "darts-v2": DARTS_V2,
}
