"""The training loop every candidate and every final model goes through.

SGD with Nesterov momentum, linear warm-up then cosine decay, label smoothing, weight decay
on weights only, gradient clipping, ScheduledDropPath and the auxiliary-head loss when the
network has them. Data stays on the device as uint8 and is augmented a whole batch at a
time (`workers.augment`), so the model is what costs the time. CPU: threads from the cores
this process may use, channels_last and bf16 autocast where they measure faster (AMX makes
bf16 several times faster on recent Xeons). CUDA: bf16 autocast, channels_last.

`nas train`, `nas baselines`, search trials and `nas transfer` all train through `train`:
alone in a process, or as one rank of a DistributedDataParallel group (gloo on CPU, NCCL on
GPU) that a Ray Train worker set up, with the same code path.
"""

from __future__ import annotations

import math
import os
import re
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from search_spaces.errors import InputError
from workers.augment import CropFlip, View
from workers.source import Split, subset


class TrainError(InputError):
    """A training configuration that cannot run on the given data (bad input)."""


@dataclass(frozen=True)
class TrainConfig:
    """How to train. Defaults are a sound short CIFAR-10 recipe; presets set the rest."""

    epochs: int = 10  # passes over the (subset of the) training split
    batch_size: int = 128  # images per step
    lr: float = 0.1  # peak learning rate (after warm-up), per batch of `batch_size`
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4  # L2 on conv/linear weights (not on BatchNorm or biases)
    label_smoothing: float = 0.1  # fraction of the target spread over all classes
    warmup_epochs: float = 0.5  # linear warm-up from lr/10, in epochs; cosine to 0 after
    grad_clip: float = 5.0  # max global gradient norm; 0 = off
    aux_weight: float = 0.4  # weight of the auxiliary head's loss (when the network has one)
    cutout: int = 0  # side of the cutout square in pixels; 0 = off
    crop_pad: int = 4  # random-crop padding in pixels; 0 = off
    flip: bool = True  # random horizontal flips
    subset: int | None = None  # train on this many images of the training split; None = all
    max_steps: int | None = None  # stop after this many optimizer steps; None = no limit
    time_budget: float | None = None  # seconds of training steps; `epochs` is then a cap
    # Under a time budget: evaluate and report at these seconds of training (the rungs of
    # successive halving) instead of after epochs; the last report is at the budget's end.
    report_at: tuple[float, ...] = ()
    report_images: int | None = None  # images scored at the rungs below the top; None = all
    seed: int = 0
    device: str = "auto"  # "auto" (cuda if available), "cpu", "cuda", "cuda:1", ...
    channels_last: bool | None = None  # None = measured choice on CPU, True on CUDA
    bf16: bool | None = None  # bf16 autocast; None = on CUDA, measured choice on CPU
    threads: int | None = None  # CPU threads; None = the cores this process may run on
    eval_every: int = 1  # evaluate every k epochs (and always after the last); 0 = last only
    eval_batch_size: int = 500  # images per evaluation batch
    tta: bool = False  # evaluation also averages in the mirrored images (test-time flip)

    def validate(self) -> TrainConfig:
        """Reject settings that cannot train; messages name the flag to change."""
        if self.epochs < 1:
            raise TrainError(f"--epochs must be at least 1 (got {self.epochs})")
        if self.batch_size < 1:
            raise TrainError(f"batch size must be at least 1 (got {self.batch_size})")
        if not self.lr > 0 or not math.isfinite(self.lr):
            raise TrainError(f"learning rate must be positive (got {self.lr})")
        if self.subset is not None and self.subset < 1:
            raise TrainError(f"--subset must be at least 1 (got {self.subset})")
        if self.max_steps is not None and self.max_steps < 1:
            raise TrainError(f"--max-steps must be at least 1 (got {self.max_steps})")
        if self.time_budget is not None and not (
                self.time_budget > 0 and math.isfinite(self.time_budget)):
            raise TrainError(f"--time-budget must be a positive number of seconds "
                             f"(got {self.time_budget})")
        if self.report_at and (self.time_budget is None or list(self.report_at) != sorted(
                self.report_at) or not all(0 < r <= self.time_budget for r in self.report_at)):
            raise TrainError(f"train setting report_at {list(self.report_at)} must be ascending "
                             "seconds in (0, time_budget] and needs a time_budget")
        for name, low, high in _RANGES:  # NaN fails every comparison, so it is refused too
            value = getattr(self, name)
            if value is None and name in _OPTIONAL:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float) or not (
                    low <= value <= high) or (name in _BELOW_HIGH and value == high):
                upper = f"{high:g})" if name in _BELOW_HIGH else f"{high:g}]"
                raise TrainError(f"train setting {name} must lie in [{low:g}, {upper} "
                                 f"(got {value!r})")
        if not _DEVICE.fullmatch(str(self.device)):
            raise TrainError(f"train setting device {self.device!r} is not a device; use auto, "
                             "cpu, cuda or cuda:N")
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# The documented range of every other numeric setting, checked by TrainConfig.validate.
_RANGES: tuple[tuple[str, float, float], ...] = (
    ("epochs", 1, 100_000), ("batch_size", 1, 65_536), ("eval_batch_size", 1, 65_536),
    ("momentum", 0.0, 1.0), ("weight_decay", 0.0, 1.0), ("label_smoothing", 0.0, 1.0),
    ("warmup_epochs", 0.0, 100_000), ("grad_clip", 0.0, 1e6), ("aux_weight", 0.0, 100.0),
    ("cutout", 0, 1024), ("crop_pad", 0, 64), ("eval_every", 0, 100_000),
    ("seed", 0, 2**31 - 1), ("threads", 1, 1024),  # seeds fit the database's 32-bit column
    ("report_images", 1, 10_000_000),
)
_BELOW_HIGH = frozenset({"momentum", "label_smoothing"})  # [low, high): 1 would not train
_OPTIONAL = frozenset({"threads", "report_images"})  # None: decided at run time
_DEVICE = re.compile(r"auto|cpu|cuda(:\d{1,2})?|mps")


@dataclass
class EpochReport:
    epoch: int  # 1-based
    train_loss: float  # mean training loss over the epoch's steps
    val_accuracy: float  # on the evaluation split; NaN when this epoch was not evaluated
    seconds: float  # wall time of the epoch's training steps (evaluation excluded); at a rung:
    # the seconds of training so far
    images_per_s: float  # training images per second in this epoch
    val_top5: float = float("nan")  # top-5 accuracy when evaluated
    at_seconds: float | None = None  # the report point (`report_at`) it answers, if any

    def as_progress(self) -> dict[str, Any]:
        """The dict a progress line takes (`nas transfer`, `nas baselines`): top-1/5 only
        when this epoch was evaluated."""
        item = {"epoch": self.epoch, "train_loss": self.train_loss,
                "images_per_s": self.images_per_s, "seconds": self.seconds}
        if math.isfinite(self.val_accuracy):
            item.update(top1=self.val_accuracy, top5=self.val_top5)
        return item


@dataclass
class TrainResult:
    epochs: list[EpochReport] = field(default_factory=list)
    accuracy: float = float("nan")  # final (top-1) accuracy on the evaluation split
    top5: float = float("nan")  # final top-5 accuracy on the evaluation split
    train_seconds: float = 0.0  # training steps only, evaluation excluded
    images_per_s: float = 0.0
    steps: int = 0
    stopped: str | None = None  # None, "non-finite loss", "pruned", "max steps", "time budget"
    settings: dict[str, Any] = field(default_factory=dict)  # device, threads, bf16, ...


def resolve_device(name: str | None) -> torch.device:
    """The device `name` means here; a CUDA device this machine lacks is a TrainError (bad
    input, exit 2) rather than torch's assertion half-way into a run."""
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise TrainError(f"train.device {name!r} is not a device; use auto, cpu, cuda or "
                         "cuda:N") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (device.index or 0) >= count:
            raise TrainError(f"train.device {name!r} asks for a GPU, but this machine has "
                             f"{count} CUDA device(s); use device cpu or auto")
    elif device.type != "cpu":
        raise TrainError(f"train.device {name!r} is not supported; use auto, cpu, cuda or "
                         "cuda:N")
    return device


def available_cores() -> int:
    """The cores this process may run on (cgroup/affinity aware), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _prepare(config: TrainConfig) -> tuple[torch.device, int]:
    """Validate, pick the device, give torch the cores this process has, seed: the start of
    every run and benchmark, so that both measure the same thing."""
    config.validate()
    device = resolve_device(config.device)
    threads = config.threads or available_cores()
    if device.type == "cpu":
        torch.set_num_threads(threads)
    torch.manual_seed(config.seed)
    return device, threads


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim > 1 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def lr_at(step: float, total: float, warmup: float, peak: float) -> float:
    """Linear warm-up from peak/10, then cosine decay to 0 at `total`. Steps or seconds:
    under a time budget the schedule runs on the clock, so it ends when the budget does."""
    if warmup > 0 and step < warmup:
        return peak * (0.1 + 0.9 * step / warmup)
    progress = (step - warmup) / max(1e-9, total - warmup)
    return peak * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


_CHOICES: dict[tuple[Any, ...], tuple[bool, bool]] = {}


def nhwc_hazard(model: nn.Module) -> bool:
    """True when training `model` channels_last on a CPU would corrupt memory.

    oneDNN's AVX2 backward-weights kernel for a stride-2 1x1 convolution over fewer than 8
    input channels (nhwc) writes past its workspace: a segfault, heap corruption or a hang,
    or silently wrong gradients (oneDNN issue #6035; seen with torch 2.14.1 on an AMD EPYC).
    Tiny networks (F=24 gives 6-channel cells) and 1/16-width baselines have such
    convolutions; the presets' networks do not.
    """
    return any(isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1) and m.stride != (1, 1)
               and m.in_channels // m.groups < 8 for m in model.modules())


def choose_formats(model: nn.Module, config: TrainConfig, device: torch.device,
                   image_size: int) -> tuple[bool, bool]:
    """(channels_last, bf16) for a run: what the config says, else True on CUDA and the
    faster by measurement on CPU; never channels_last on CPU where `nhwc_hazard` holds."""
    if device.type == "cuda":
        return (True if config.channels_last is None else config.channels_last,
                True if config.bf16 is None else config.bf16)
    allow_cl = not nhwc_hazard(model)
    channels_last = config.channels_last if allow_cl else False
    bf16 = config.bf16
    if channels_last is None or bf16 is None:
        cl_m, bf_m = measure_formats(model, config.batch_size, device, image_size,
                                     channels_last=allow_cl)
        channels_last = cl_m if channels_last is None else channels_last
        bf16 = bf_m if bf16 is None else bf16
    return channels_last, bf16


def measure_formats(model: nn.Module, batch_size: int, device: torch.device,
                    image_size: int = 32, steps: int = 3,
                    channels_last: bool = True) -> tuple[bool, bool]:
    """(channels_last, bf16) that make a training step fastest on this CPU, by timing them
    (channels_last only tried when `channels_last`).

    The model's weights are restored afterwards; the answer is remembered for this process.
    """
    key = (type(model).__name__, sum(p.numel() for p in model.parameters()), batch_size,
           str(device), torch.get_num_threads(), channels_last)
    if key in _CHOICES:
        return _CHOICES[key]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    was_training = model.training
    model.train()
    n = min(batch_size, 64)
    x = torch.randn(n, 3, image_size, image_size, device=device)
    y = torch.zeros(n, dtype=torch.int64, device=device)  # any class count: the timing is alike
    best, best_time = (False, False), math.inf
    for cl in (False, True) if channels_last else (False,):
        for bf in (False, True):
            model.to(memory_format=torch.channels_last if cl else torch.contiguous_format)
            xi = x.contiguous(memory_format=torch.channels_last) if cl else x
            times = []
            for _ in range(steps):
                start = time.perf_counter()
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf):
                    out = model(xi)
                loss = F.cross_entropy(out.float(), y)
                loss.backward()
                times.append(time.perf_counter() - start)
            model.zero_grad(set_to_none=True)
            if min(times[1:]) < best_time:
                best, best_time = (cl, bf), min(times[1:])
    model.load_state_dict(state)
    model.to(memory_format=torch.contiguous_format)
    model.train(was_training)
    _CHOICES[key] = best
    return best


def _forward_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, config: TrainConfig,
                  bf16: bool, device: torch.device,
                  forward: nn.Module | None = None) -> torch.Tensor:
    """Loss of one batch; `forward` is the module called (a DDP wrapper of `model`, or
    `model` itself), `model` the network whose auxiliary logits are read."""
    has_aux = hasattr(model, "aux_logits")
    if has_aux:
        model.aux_logits = None  # type: ignore[assignment]
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        logits = (forward or model)(x)
    loss = F.cross_entropy(logits.float(), y, label_smoothing=config.label_smoothing)
    aux = getattr(model, "aux_logits", None) if has_aux else None
    if aux is not None and config.aux_weight > 0:
        loss = loss + config.aux_weight * F.cross_entropy(
            aux.float(), y, label_smoothing=config.label_smoothing)
    return loss


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, params: list[torch.Tensor],
               x: torch.Tensor, y: torch.Tensor, config: TrainConfig, bf16: bool,
               device: torch.device, forward: nn.Module | None = None) -> torch.Tensor:
    """Forward, backward, clip, update; returns the detached loss (no device sync)."""
    loss = _forward_loss(model, x, y, config, bf16, device, forward)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if config.grad_clip > 0:
        nn.utils.clip_grad_norm_(params, config.grad_clip)
    optimizer.step()
    return loss.detach()


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    return torch.optim.SGD(
        _param_groups(model, config.weight_decay), lr=config.lr, momentum=config.momentum,
        nesterov=config.nesterov)


def _rank_world() -> tuple[int, int]:
    """(rank, world size) of the process group this process is in; (0, 1) when none."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _agree(values: list[float], world: int, device: torch.device) -> list[float]:
    """The maximum of each value over all ranks: a rank that stopped, pruned or read the clock
    alone would change its learning rate or hang the others in their next all-reduce."""
    if world == 1:
        return values
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t.tolist()


def train(
    model: nn.Module,
    train: Split,
    evaluate: Split,
    config: TrainConfig,
    on_epoch: Callable[[EpochReport], bool] | None = None,
    on_step: Callable[[int, int], None] | None = None,
    view: View | None = None,
) -> TrainResult:
    """Train `model` on `train` (or its `config.subset`), score on `evaluate` each epoch.

    `view` turns uint8 batches into the network's input (default: CIFAR's crop + flip from
    the config; ImageNet-layout runs pass `ResizedCrop`). `on_epoch` returning True stops the
    run (pruning). A NaN/inf loss stops the run with `stopped="non-finite loss"` rather than
    training on garbage. `on_step(step, total)` is for progress bars.

    Inside a torch.distributed process group (a Ray Train worker) the same loop runs DDP: the
    model is wrapped, each rank takes its slice of every global batch of `batch_size` and
    its shard of `evaluate`, and stop decisions are agreed over the ranks. A single process
    skips all of that.
    """
    device, threads = _prepare(config)
    view = view or CropFlip(config.crop_pad, config.flip, config.cutout)
    rank, world = _rank_world()
    if config.batch_size % world:
        raise TrainError(f"batch size {config.batch_size} does not split evenly over {world} "
                         "processes")
    if config.subset is not None:
        train = subset(train, config.subset, seed=config.seed)
    n = len(train)
    if n < config.batch_size:
        raise TrainError(
            f"batch size {config.batch_size} is larger than the {n} training images; "
            "use a larger --subset or a smaller batch size")
    if len(evaluate) < 1:
        raise TrainError("the evaluation split is empty")
    model.to(device)
    channels_last, bf16 = choose_formats(model, config, device, view.size(train.x.shape[-1]))
    if world > 1:  # every rank trains in the same formats (any rank's choice of each)
        channels_last, bf16 = (bool(v) for v in _agree([channels_last, bf16], world, device))
    torch.manual_seed(config.seed)  # a measurement must not change what follows
    if channels_last:
        model.to(memory_format=torch.channels_last)
    forward = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        cuda_index = device.index if device.type == "cuda" else None
        forward = DistributedDataParallel(
            model, device_ids=None if cuda_index is None else [cuda_index])
    x_all = train.x.to(device)
    y_all = train.y.to(device)
    gen = torch.Generator(device=device).manual_seed(config.seed)
    # The batch order comes from `gen`, equal on every rank; each rank augments with its own.
    aug = gen if world == 1 else torch.Generator(device=device).manual_seed(
        config.seed * 1009 + rank)
    optimizer = make_optimizer(model, config)
    params = [p for g in optimizer.param_groups for p in g["params"]]
    per_rank = config.batch_size // world
    steps_per_epoch = n // config.batch_size
    total = config.epochs * steps_per_epoch
    if config.max_steps is not None:
        total = min(total, config.max_steps)
    warmup = round(config.warmup_epochs * steps_per_epoch)
    budget = config.time_budget
    # Under a time budget the schedule is in seconds: warm-up takes the same share of it as
    # warmup_epochs takes of the epoch cap.
    warmup_s = budget * config.warmup_epochs / config.epochs if budget else 0.0
    spent = 0.0  # seconds of training steps so far (evaluation excluded)
    check_every = 1 if device.type == "cpu" else 25  # each check syncs a GPU
    result = TrainResult(settings={
        "device": str(device), "threads": threads, "channels_last": channels_last,
        "bf16": bf16, "train_images": n, "steps_per_epoch": steps_per_epoch,
        "world_size": world,
    })
    shard = evaluate.shard(rank, world)
    step = 0
    # On the clock with report points, reports come at those seconds, not after epochs.
    rungs = list(config.report_at) if budget and config.report_at else None
    # The lower rungs score a fixed subset of the evaluation split (cheap, same for all).
    few = config.report_images
    rung_shard = shard if few is None or few >= len(evaluate) else subset(
        evaluate, few, seed=0).shard(rank, world)

    def report_rung(epoch: int, at: float, seconds: float, loss: float,
                    top: bool = False) -> bool:
        """Evaluate now, record and report it as the rung `at`; True if told to stop."""
        top1, top5 = evaluate_model(model, shard if top else rung_shard,
                                    config.eval_batch_size, device, channels_last, bf16,
                                    config.tta, view, world)
        if world > 1:
            loss = _mean([loss], world, device)[0]
        report = EpochReport(epoch=epoch, train_loss=loss, val_accuracy=top1, seconds=seconds,
                             images_per_s=step * config.batch_size / max(seconds, 1e-9),
                             val_top5=top5, at_seconds=at)
        result.epochs.append(report)
        result.accuracy, result.top5 = top1, top5
        return on_epoch is not None and bool(
            _agree([float(bool(on_epoch(report)))], world, device)[0])

    for epoch in range(1, config.epochs + 1):
        model.train()
        start = time.perf_counter()
        loss_sum = torch.zeros((), device=device)
        done = 0
        perm = torch.randperm(n, device=device, generator=gen)
        for i in range(steps_per_epoch):
            if step >= total:
                break
            lo = i * config.batch_size + rank * per_rank
            index = perm[lo:lo + per_rank]
            xb = view.train(x_all[index], aug, channels_last=channels_last)
            if budget:
                elapsed = _agree([spent + time.perf_counter() - start], world, device)[0]
                if elapsed >= budget:
                    result.stopped = "time budget"
                    break
                if rungs and elapsed >= rungs[0]:
                    while len(rungs) > 1 and elapsed >= rungs[1]:
                        rungs.pop(0)  # a step that crossed two rungs reports the higher
                    paused = time.perf_counter()
                    stop = report_rung(epoch, rungs.pop(0), elapsed,
                                       float(loss_sum) / max(1, done))
                    start += time.perf_counter() - paused  # evaluation is off the clock
                    if stop:
                        result.stopped = "pruned"
                        break
                lr = lr_at(elapsed, budget, warmup_s, config.lr)
                progress = elapsed / budget
            else:
                lr = lr_at(step, total, warmup, config.lr)
                progress = step / max(1, total)
            for group in optimizer.param_groups:
                group["lr"] = lr
            if hasattr(model, "set_progress"):
                model.set_progress(progress)
            loss = train_step(model, optimizer, params, xb, y_all[index], config, bf16, device,
                              forward)
            loss_sum += loss
            step += 1
            done += 1
            if on_step is not None:
                on_step(step, total)
            if (step % check_every == 0 or i == steps_per_epoch - 1) and _agree(
                    [float(not torch.isfinite(loss_sum))], world, device)[0]:
                result.stopped = "non-finite loss"
                break
        seconds = time.perf_counter() - start
        spent += seconds
        result.train_seconds += seconds
        result.steps = step
        images = done * config.batch_size
        if budget and spent >= budget and result.stopped is None:
            result.stopped = "time budget"  # also when it ran out at the epoch's last step
        out_of_time = result.stopped == "time budget"
        last = epoch == config.epochs or step >= total or result.stopped is not None
        if rungs is not None:  # the last report closes the budget; its answer is moot
            if last and result.stopped in (None, "time budget"):
                report_rung(epoch, budget if out_of_time else spent, spent,
                            float(loss_sum) / max(1, done), top=True)
            if not last:
                continue
            if result.stopped is None and step < config.epochs * steps_per_epoch:
                result.stopped = "max steps"
            break
        evaluated = (result.stopped is None or out_of_time) and (
            last or (config.eval_every > 0 and epoch % config.eval_every == 0))
        top1 = top5 = float("nan")
        if evaluated:
            top1, top5 = evaluate_model(model, shard, config.eval_batch_size, device,
                                        channels_last, bf16, config.tta, view, world)
        mean_loss = float(loss_sum) / max(1, done)
        if world > 1:
            mean_loss = _mean([mean_loss], world, device)[0]
        report = EpochReport(
            epoch=epoch, train_loss=mean_loss, val_accuracy=top1, seconds=seconds,
            images_per_s=images / seconds if seconds > 0 else 0.0, val_top5=top5)
        result.epochs.append(report)
        if evaluated:
            result.accuracy, result.top5 = top1, top5
        if result.stopped is not None:
            break
        if on_epoch is not None and _agree([float(bool(on_epoch(report)))], world, device)[0]:
            result.stopped = "pruned"
            break
        if step >= total:
            if step < config.epochs * steps_per_epoch:
                result.stopped = "max steps"
            break
    result.images_per_s = result.steps * config.batch_size / max(result.train_seconds, 1e-9)
    if channels_last:
        model.to(memory_format=torch.contiguous_format)
    return result


def _mean(values: list[float], world: int, device: torch.device) -> list[float]:
    """The mean of each value over all ranks."""
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return (t / world).tolist()


@torch.no_grad()
def evaluate_model(model: nn.Module, split: Split, batch_size: int = 500,
                   device: torch.device | str | None = None, channels_last: bool = False,
                   bf16: bool = False, tta: bool = False, view: View | None = None,
                   world: int = 1) -> tuple[float, float]:
    """(top-1, top-5) accuracy on `split` through `view`'s evaluation crop (eval mode; with
    `tta` the mirrored image is averaged in). With `world` > 1, `split` is this rank's shard:
    the counts are summed over the ranks, after every rank took rank 0's BatchNorm
    statistics, so all score exactly the weights rank 0 saves."""
    if device is None:
        device = next(model.parameters()).device
    device = torch.device(device)
    view = view or CropFlip()
    if world > 1:
        import torch.distributed as dist

        for buffer in model.buffers():
            dist.broadcast(buffer, src=0)
    was_training = model.training
    model.eval()
    counts = torch.zeros(3, dtype=torch.float64, device=device)  # top-1, top-5, images
    for start in range(0, len(split), batch_size):
        xb = view.eval(split.x[start:start + batch_size].to(device), channels_last)
        yb = split.y[start:start + batch_size].to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = model(xb).float()
            if tta:
                logits = logits.softmax(1) + model(xb.flip(3)).float().softmax(1)
        best = logits.topk(min(5, logits.shape[1]), dim=1).indices
        counts[0] += (best[:, 0] == yb).sum()
        counts[1] += (best == yb[:, None]).any(dim=1).sum()
        counts[2] += len(yb)
    model.train(was_training)
    if world > 1:
        dist.all_reduce(counts)
    return float(counts[0] / counts[2]), float(counts[1] / counts[2])


def evaluate(model: nn.Module, split: Split, batch_size: int = 500,
             device: torch.device | str | None = None, view: View | None = None) -> float:
    """Top-1 accuracy of `model` on `split` in fp32 (the public, format-agnostic scorer)."""
    return evaluate_model(model, split, batch_size, device, view=view)[0]


def with_overrides(config: TrainConfig, **changes: Any) -> TrainConfig:
    """A copy with the given fields changed; None values are ignored (unset CLI flags)."""
    return replace(config, **{k: v for k, v in changes.items() if v is not None})


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def benchmark(model: nn.Module, split: Split, config: TrainConfig, steps: int = 5,
              repeats: int = 5, view: View | None = None) -> dict[str, Any]:
    """Images/s of the whole training step (batch sampling from uint8 data on the device,
    augmentation, normalisation, forward, backward, update) and of the model alone on a
    pre-made batch; the median of `repeats`, the two measured alternately so that load from
    other processes hits both alike."""
    device, threads = _prepare(config)
    view = view or CropFlip(config.crop_pad, config.flip, config.cutout)
    if len(split) < config.batch_size:
        raise TrainError(f"batch size {config.batch_size} is larger than the {len(split)} "
                         "images available")
    model.to(device).train()
    channels_last, bf16 = choose_formats(model, config, device, view.size(split.x.shape[-1]))
    if channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model, config)
    params = [p for g in optimizer.param_groups for p in g["params"]]
    x_all, y_all = split.x.to(device), split.y.to(device)
    gen = torch.Generator(device=device).manual_seed(config.seed)
    n, b = len(split), config.batch_size
    fixed_x = view.train(x_all[:b], gen, channels_last)
    fixed_y = y_all[:b]

    def whole() -> None:
        index = torch.randint(0, n, (b,), device=device, generator=gen)
        xb = view.train(x_all[index], gen, channels_last)
        train_step(model, optimizer, params, xb, y_all[index], config, bf16, device)

    def model_only() -> None:
        train_step(model, optimizer, params, fixed_x, fixed_y, config, bf16, device)

    def timed(fn: Callable[[], None]) -> float:
        _sync(device)
        start = time.perf_counter()
        for _ in range(steps):
            fn()
        _sync(device)
        return steps * b / (time.perf_counter() - start)

    whole()  # warm-up: allocator, kernels, oneDNN primitives
    model_only()
    rates: dict[str, list[float]] = {"whole": [], "model": []}
    for r in range(repeats):
        order = (("whole", whole), ("model", model_only))
        for name, fn in order if r % 2 == 0 else order[::-1]:
            rates[name].append(timed(fn))
    whole_rate = statistics.median(rates["whole"])
    model_rate = statistics.median(rates["model"])
    return {
        "images_per_s": whole_rate, "model_only_images_per_s": model_rate,
        "ratio": whole_rate / model_rate, "batch_size": b, "steps": steps,
        "repeats": repeats, "device": str(device), "threads": threads,
        "channels_last": channels_last, "bf16": bf16,
        "samples": {k: [round(v, 1) for v in vs] for k, vs in rates.items()},
    }
