"""The CUDA path on a small real CIFAR-10 subset: bf16 + channels_last training lands in the
CPU's accuracy band, data and augmentation stay on the device, an out-of-memory candidate is
a FAIL that frees its memory, export parity, and DDP over NCCL at world size 1.

Marked `cuda` and skipped without CUDA. `NAS_CUDA_TEST_DEVICE=cpu` runs them on the CPU
instead (the GPU check's dry run, `benchmarks/gpu_check.sh`), leaving out only what needs a
GPU to mean anything (memory accounting, copy counts, the OOM, NCCL: gloo stands in).
"""

from __future__ import annotations

import os
import socket
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from test_data import make_small_cifar

from search_spaces import get_arch
from workers.data import Cifar10, load_cifar10
from workers.train import TrainConfig, available_cores, lr_at, nhwc_hazard, train

DEVICE = torch.device(os.environ.get("NAS_CUDA_TEST_DEVICE") or "cuda")
ON_GPU = DEVICE.type == "cuda"

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(ON_GPU and not torch.cuda.is_available(),
                       reason="no CUDA device (NAS_CUDA_TEST_DEVICE=cpu runs these on the CPU)"),
]

# On the GPU: 2,000 real training images, 500 to score on, 3 epochs. The CPU dry run only
# walks the code (2 cores): 400 images, 1 epoch, and the accuracy band is printed, not held.
TRAIN_PER_CLASS = 200 if ON_GPU else 40
TEST_PER_CLASS = 50 if ON_GPU else 20
RECIPE = TrainConfig(epochs=3 if ON_GPU else 1, batch_size=64, lr=0.1, warmup_epochs=0.3,
                     label_smoothing=0.0, seed=0, eval_batch_size=500)
MIB = 2**20


@pytest.fixture(scope="module")
def data(cifar_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Cifar10:
    root = make_small_cifar(cifar_dir, tmp_path_factory.mktemp("cifar-cuda"),
                            train=TRAIN_PER_CLASS, test=TEST_PER_CLASS)
    return load_cifar10(root, cache_dir=tmp_path_factory.mktemp("cache"))


@pytest.fixture(autouse=True)
def _exact_fp32() -> None:
    """fp32 means fp32 (no TF32) where a test compares numbers."""
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn


def small_net(seed: int = 0, **settings: object) -> torch.nn.Module:
    """NASNet-A 1@48: the smallest net without CPU channels_last hazards (C=8)."""
    torch.manual_seed(seed)
    model = get_arch("nasnet-a").build(layout="cifar", cells=1, filters=48, **settings)
    assert not nhwc_hazard(model)
    return model


def test_bf16_channels_last_training_lands_in_the_cpu_accuracy_band(data: Cifar10) -> None:
    cpu = train(small_net(), data.train_full, data.test,
                replace(RECIPE, device="cpu", channels_last=False, bf16=False))
    dev = train(small_net(), data.train_full, data.test,
                replace(RECIPE, device=str(DEVICE), channels_last=True, bf16=ON_GPU))
    assert dev.settings["channels_last"] and dev.settings["bf16"] == ON_GPU
    assert dev.settings["device"].startswith(DEVICE.type)
    print(f"accuracy: cpu fp32 {cpu.accuracy:.3f}, {DEVICE} bf16+channels_last "
          f"{dev.accuracy:.3f}")
    assert 0.0 <= dev.accuracy <= 1.0 and len(dev.epochs) == RECIPE.epochs
    if ON_GPU:
        assert cpu.accuracy > 0.2, cpu  # chance is 0.1: the reference did learn
        assert abs(dev.accuracy - cpu.accuracy) <= 0.08, (cpu.accuracy, dev.accuracy)
        assert dev.epochs[-1].train_loss < dev.epochs[0].train_loss


def _copies(prof: torch.profiler.profile) -> tuple[int, int, int]:
    """(host-to-device copies, device-to-host copies, CUDA kernels) the profiler saw."""
    names = [e.name for e in prof.events()]
    return (sum("Memcpy HtoD" in n for n in names), sum("Memcpy DtoH" in n for n in names),
            sum(e.device_type == torch.autograd.DeviceType.CUDA for e in prof.events()))


@pytest.mark.parametrize("final", [False, True], ids=["plain", "drop-path-aux-cutout"])
def test_data_and_augmentation_stay_on_the_device(data: Cifar10, final: bool) -> None:
    """Every batch reaches the model already on the device, normalised and channels_last,
    and the steps make no per-step host round trip (copies counted by the profiler); also
    with gpu-final's extras (ScheduledDropPath, the auxiliary head, cutout)."""
    model = small_net(auxiliary=True, drop_path=0.2) if final else small_net()
    seen: list[tuple[str, torch.dtype, bool]] = []
    model.register_forward_pre_hook(lambda _m, args: seen.append(
        (args[0].device.type, args[0].dtype,
         args[0].is_contiguous(memory_format=torch.channels_last))))
    config = replace(RECIPE, epochs=2, device=str(DEVICE), channels_last=True, bf16=ON_GPU,
                     cutout=8 if final else 0)
    activities = [torch.profiler.ProfilerActivity.CPU]
    if ON_GPU:
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as prof:
        result = train(model, data.train_full, data.test, config)
    steps = result.steps
    assert steps == 2 * (len(data.train_full) // config.batch_size)
    training = seen[:steps]  # then the evaluation batches
    assert {s[0] for s in training} == {DEVICE.type}
    assert all(s[1] == torch.float32 and s[2] for s in training), set(training)
    if ON_GPU:
        to_device, to_host, kernels = _copies(prof)
        print(f"{steps} steps: {to_device} host-to-device, {to_host} device-to-host copies, "
              f"{kernels} CUDA events")
        assert kernels > steps, "the profiler saw no CUDA activity (CUPTI missing?)"
        # Allowed: the dataset once, the evaluation batches and a loss check every 25 steps.
        assert to_device < steps // 3 and to_host < steps // 3, (to_device, to_host, steps)


def _trial(number: int, network: dict[str, object], config: TrainConfig) -> object:
    from workers.trial import TrialSpec

    genotype = get_arch("nasnet-a").genotype
    assert genotype is not None
    return TrialSpec(study="cuda", number=number, genotype=genotype.to_dict(),
                     network={"layout": "cifar", "image_size": 32, "num_classes": 10,
                              **network},
                     train=config, seed=number, threads=available_cores())


@pytest.mark.skipif(not ON_GPU, reason="a GPU's out-of-memory path")
def test_out_of_memory_fails_the_trial_frees_the_memory_and_the_next_trial_runs(
    data: Cifar10,
) -> None:
    from workers.trial import run_trial, to_arrays

    arrays = {"train": to_arrays(data.train), "val": to_arrays(data.val)}
    torch.cuda.empty_cache()
    start = torch.cuda.memory_allocated(DEVICE)
    total = torch.cuda.get_device_properties(DEVICE).total_memory
    # 4 GiB for this process, whatever the card: NASNet-A 6@768 at batch 1,024 needs far more.
    torch.cuda.set_per_process_memory_fraction(min(1.0, 4 * 2**30 / total), DEVICE)
    try:
        big = run_trial(_trial(0, {"cells": 6, "filters": 768},
                               replace(RECIPE, epochs=1, batch_size=1024, max_steps=2)), arrays)
        left = torch.cuda.memory_allocated(DEVICE) - start
        print(f"OOM trial: {big['status']}: {str(big['error'])[:120]}; "
              f"{left / MIB:.1f} MiB still allocated")
        assert big["status"] == "fail" and big["error"].startswith("out of memory"), big
        assert left < 64 * MIB, f"{left / MIB:.0f} MiB still allocated after the failed trial"
        small = run_trial(_trial(1, {"cells": 1, "filters": 48},
                                 replace(RECIPE, epochs=1, max_steps=5, eval_batch_size=200)),
                          arrays)
        assert small["status"] == "complete", small["error"]
        assert small["device"] == torch.cuda.get_device_name(DEVICE)
        assert 0.0 <= small["val_accuracy"] <= 1.0
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0, DEVICE)
    assert torch.cuda.memory_allocated(DEVICE) - start < 64 * MIB


def test_exported_module_matches_the_network_on_the_device(data: Cifar10,
                                                           tmp_path: Path) -> None:
    from nas.results.export import export_model, load_generated
    from workers.augment import normalize

    arch = get_arch("nasnet-a")
    info = export_model(arch, tmp_path / "export", cells=1, filters=48)
    module = load_generated(Path(info["module"]))
    reference = small_net(seed=3, auxiliary=False).eval()
    exported = module.build()
    module.load_state(exported, reference.state_dict(), "the project's network")
    exported.eval()
    x = normalize(data.test.x[:32])
    with torch.no_grad():
        on_cpu = reference(x)
        reference.to(DEVICE)
        exported.to(DEVICE)
        xd = x.to(DEVICE)
        ours, theirs = reference(xd), exported(xd)
        assert (ours - theirs).abs().max() <= 1e-4
        assert (ours.cpu() - on_cpu).abs().max() <= 1e-3
        reference.to(memory_format=torch.channels_last)
        exported.to(memory_format=torch.channels_last)
        xl = xd.contiguous(memory_format=torch.channels_last)
        with torch.autocast(DEVICE.type, dtype=torch.bfloat16):
            ours_bf, theirs_bf = reference(xl).float(), exported(xl).float()
    assert (ours_bf - theirs_bf).abs().max() <= 5e-2
    assert (ours_bf.argmax(1) == theirs_bf.argmax(1)).float().mean() >= 0.95


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_ddp_at_world_size_one_runs_an_epoch_of_the_imagenet_layout(data: Cifar10) -> None:
    """What `nas transfer`'s workers do, without Ray (absent on the GPU check's machine): a
    process group (NCCL on CUDA), DDP over the ImageNet-layout network, the transfer's
    augmentation and schedule, bf16 and channels_last, one epoch."""
    import torch.distributed as dist
    import torch.nn.functional as F

    from workers.augment import random_resized_crop

    backend = "nccl" if ON_GPU else "gloo"
    dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{_free_port()}", rank=0,
                            world_size=1)
    try:
        torch.manual_seed(0)
        net = get_arch("nasnet-a").build(layout="imagenet", cells=1, filters=48, image_size=64,
                                         num_classes=10).to(DEVICE)
        if ON_GPU:
            net = net.to(memory_format=torch.channels_last)
        model = torch.nn.parallel.DistributedDataParallel(
            net, device_ids=[DEVICE.index or 0] if ON_GPU else None)
        opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, nesterov=True)
        x_all, y_all = data.train_full.x, data.train_full.y
        batch = 64
        steps = len(y_all) // batch
        gen = torch.Generator().manual_seed(0)
        order = torch.randperm(len(y_all), generator=gen)  # the files come class by class
        losses = []
        for s in range(steps):
            idx = order[s * batch:(s + 1) * batch]
            xb = random_resized_crop(x_all[idx].to(DEVICE), 64, gen)
            if ON_GPU:
                xb = xb.contiguous(memory_format=torch.channels_last)
            for group in opt.param_groups:
                group["lr"] = lr_at(s, steps, 2, 0.05)
            with torch.autocast(DEVICE.type, dtype=torch.bfloat16, enabled=ON_GPU):
                loss = F.cross_entropy(model(xb).float(), y_all[idx].to(DEVICE))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.detach())
        mean = torch.stack(losses).mean()
        dist.all_reduce(mean)
        assert torch.isfinite(mean) and len(losses) == steps
        for p in net.parameters():  # DDP averaged (over one rank) and the update landed
            assert p.grad is None or torch.isfinite(p.grad).all()
    finally:
        dist.destroy_process_group()


def test_transfer_with_ray_and_nccl_runs_an_epoch(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The real `nas transfer` loop on one GPU worker (NCCL, world size 1). Needs Ray, which
    the GPU check's machine lacks (its wheel does not fit the carry): it runs where Ray is."""
    pytest.importorskip("ray.train", reason="Ray is not installed here")
    if not ON_GPU:
        pytest.skip("on the CPU, tests/test_transfer.py runs this loop (gloo)")
    from test_transfer import link_subset

    from nas.training.transfer import transfer

    monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path / "cache"))
    folder = link_subset(tmp_path / "imagenette", train=16, val=8)
    row = transfer("nasnet-a", folder, None, out=tmp_path / "runs", preset="cpu-transfer",
                   cells=1, filters=48, image_size=64, epochs=1, batch_size=16, workers=1,
                   gpus_per_worker=1.0)
    assert row["workers"] and row["workers"][0]["device"].startswith("cuda")
    assert 0.0 <= row["top1"] <= 1.0 and Path(row["checkpoint"]).is_file()
