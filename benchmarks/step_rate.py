"""Training-step rate (img/s) of a few networks at batch 64/256 and 1/2 threads (channels_last
fp32), then in each of the four formats (contiguous or channels_last, fp32 or bf16 autocast)
at batch 64 on 2 threads: what docs/results/comparison.md uses to ask whether threads, batch
size or format separate the cell networks from ResNet-18/16. Random 32x32 input, SGD; 3
warm-up steps, then 12 timed. Run from the repository root with nothing else on the machine:

    .venv/bin/python benchmarks/step_rate.py
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch import nn

from nas.refs import resolve_ref
from search_spaces.registry import get_model
from workers.throughput import cpu_model


def step_rate(model: nn.Module, batch: int, threads: int, steps: int = 12,
              channels_last: bool = True, bf16: bool = False) -> float:
    torch.set_num_threads(threads)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.train().to(memory_format=fmt)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, 3, 32, 32).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (batch,))

    def one() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = model(x)
        out = out[0] if isinstance(out, tuple) else out
        loss = nn.functional.cross_entropy(out.float(), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(3):
        one()
    start = time.perf_counter()
    for _ in range(steps):
        one()
    return batch * steps / (time.perf_counter() - start)


def main() -> None:
    searched = resolve_ref("s1:48", "sqlite:///docs/results/comparison.db")
    chain = resolve_ref("docs/results/plain-cell/chain3.json")
    models: dict[str, Callable[[], nn.Module]] = {
        "s1:48 1@128 s2": lambda: searched.build(cells=1, filters=128, stem_stride=2),
        "resnet18/16": lambda: get_model("resnet18", layout="cifar", width=1 / 16),
        "mobilenet-v1/4": lambda: get_model("mobilenet-v1", layout="cifar", width=1 / 4),
        "chain3 1@24 s2": lambda: chain.build(cells=1, filters=24, stem_stride=2),
    }
    print(f"host: {cpu_model()}; channels_last fp32")
    for name, make in models.items():
        rates = {(b, t): step_rate(make(), b, t) for b in (64, 256) for t in (1, 2)}
        print(f"{name:18s} " + "  ".join(f"b{b} t{t}: {v:5.0f}" for (b, t), v in rates.items()),
              flush=True)
    print("batch 64, 2 threads; contiguous (nchw) or channels_last (nhwc), fp32 or bf16")
    for name, make in models.items():
        rates = {(cl, bf): step_rate(make(), 64, 2, channels_last=cl, bf16=bf)
                 for cl in (False, True) for bf in (False, True)}
        print(f"{name:18s} " + "  ".join(
            f"{'nhwc' if cl else 'nchw'} {'bf16' if bf else 'fp32'}: {v:5.0f}"
            for (cl, bf), v in rates.items()), flush=True)


if __name__ == "__main__":
    main()
