"""Cost of a network: parameters and multiply-accumulates for one image.

Mult-adds are torch.utils.flop_counter FLOPs / 2 (convolutions and linear layers), counted
in eval mode so the auxiliary head does not run; its parameters are excluded too.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

AUX_PREFIXES = ("aux_head.", "aux1.", "aux2.", "AuxLogits.")


@dataclass(frozen=True)
class Cost:
    params: int  # trainable parameters, auxiliary head excluded
    mult_adds: int  # multiply-accumulates for one image


def count_params(model: nn.Module) -> int:
    """Parameters of the network people deploy: auxiliary heads are training-only."""
    return sum(
        p.numel() for name, p in model.named_parameters() if not name.startswith(AUX_PREFIXES)
    )


def count_mult_adds(model: nn.Module, image_size: int, in_channels: int = 3) -> int:
    """Multiply-accumulates of one forward pass at batch 1, on whatever device `model` is.

    Works on the meta device, so huge networks are counted without allocating them.
    """
    param = next(model.parameters())
    x = torch.zeros(1, in_channels, image_size, image_size, device=param.device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2


def count_cost(model: nn.Module, image_size: int, in_channels: int = 3) -> Cost:
    return Cost(count_params(model), count_mult_adds(model, image_size, in_channels))
