"""Why VGG-16 and AlexNet at width 1/16 stayed near chance under cpu-compare, and what the
initialization rule of search_spaces.baselines changes: the input signal at the logits and
a short fixed-step run (the cpu-compare recipe with a step cap instead of the clock).

    .venv/bin/python benchmarks/baseline_init.py vgg16 --init default --lr 0.1 --steps 300 \
        --data ../shared/data/cifar10

`--init default` gives every convolution and linear layer PyTorch's default init (what the
width rule's layers had before the rule); `--init he` keeps the network as built now.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import torch
from torch import nn

from search_spaces import get_arch
from workers.augment import CIFAR10_MEAN, CIFAR10_STD
from workers.data import load_cifar10
from workers.presets import get_preset
from workers.train import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("arch")
    parser.add_argument("--init", choices=["default", "he"], default="he")
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--width", type=float, default=0.0625)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--data", default=None)
    args = parser.parse_args()
    cifar = load_cifar10(args.data)
    torch.manual_seed(0)
    model = get_arch(args.arch).build(layout="cifar", width=args.width)
    if args.init == "default":
        for m in model.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                m.reset_parameters()
    mean = torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR10_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        logits = model.eval()((cifar.val.x[:64].float() - mean) / std)
    signal = float(logits.std(0).mean())  # how much the logits depend on the image
    config = dataclasses.replace(
        get_preset("cpu-compare").train, time_budget=None, epochs=1, max_steps=args.steps,
        warmup_epochs=0.05, lr=args.lr, channels_last=False, bf16=False, threads=args.threads)
    start = time.perf_counter()
    result = train(model.train(), cifar.train, cifar.val, config)
    print(f"{args.arch} width {args.width:g} init {args.init} lr {args.lr:g}: logit std across "
          f"images at init {signal:.2e}; after {result.steps} steps val {result.accuracy:.4f}, "
          f"train loss {result.epochs[-1].train_loss:.3f}, {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
