"""Asking for a GPU where there is none is bad input: `train.device cuda` or a `gpu-` preset on
a machine (or Ray cluster) without CUDA exits 2 with one line naming the flag, before any data
is read or anything is written. Skipped where CUDA is present (there these are valid)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from nas.cli import main
from nas.search.config import SearchConfig
from nas.search.driver import require_gpus, resolve_settings
from workers.presets import PRESETS, require_hardware
from workers.train import TrainConfig, TrainError, resolve_device

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")

CPU_PRESETS = "cpu-quick, cpu-compare, cpu-search, cpu-final"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "nasnet-a", "--preset", "gpu-nasnet"], "--preset gpu-nasnet is for GPUs"),
        (["train", "resnet18", "--preset", "gpu-final"], "--preset gpu-final is for GPUs"),
        (["baselines", "--arch", "resnet18", "--preset", "gpu-nasnet"],
         "--preset gpu-nasnet is for GPUs"),
        (["bench", "train", "nasnet-a", "--preset", "gpu-nasnet"],
         "--preset gpu-nasnet is for GPUs"),
        (["search", "--preset", "gpu-nasnet"], "--preset gpu-nasnet is for GPUs"),
        (["search", "--config", "{config}"], "train.device 'cuda' asks for a GPU"),
    ],
)
def test_gpu_requests_without_cuda_exit_2_with_one_line(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "search.yaml"
    config.write_text("train:\n  device: cuda\n")
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    words = [a.replace("{config}", str(config)) for a in args]
    # --data points nowhere: the GPU check must come first (no data read, no database).
    code = main([*words, "--storage", url, "--data", str(tmp_path / "no-data")])
    out, err = capsys.readouterr()
    assert code == 2, err
    assert message in err and "this machine has none" in err, err
    assert err.count("\n") == 1 and "Traceback" not in err and out == ""
    assert not (tmp_path / "nas.db").exists()
    assert not (tmp_path / "checkpoints").exists()


@pytest.mark.parametrize(
    ("preset", "device", "gpus", "message"),
    [
        ("gpu-nasnet", "auto", 0, f"--preset gpu-nasnet is for GPUs, but the Ray cluster has "
                                  f"none; use a CPU preset ({CPU_PRESETS})"),
        ("gpu-final", "auto", 0.0, "--preset gpu-final is for GPUs"),
        ("cpu-quick", "cuda", 0, "train.device 'cuda' asks for a GPU, but the Ray cluster has "
                                 "none; set train.device to cpu or auto"),
        ("cpu-quick", "cuda:1", 0, "train.device 'cuda:1' asks for a GPU"),
        ("gpu-nasnet", "cuda", 0, "train.device 'cuda' asks for a GPU"),
        ("gpu-nasnet", "cpu", 0, None),  # an explicit CPU device runs a gpu- preset on purpose
        ("cpu-quick", "auto", 0, None),
        ("gpu-nasnet", "auto", 1, None),  # a cluster with a GPU
        ("cpu-final", "cuda", 0.5, None),
    ],
)
def test_require_hardware(preset: str, device: str, gpus: float, message: str | None) -> None:
    train = replace(PRESETS[preset].train, device=device)
    if message is None:
        require_hardware(preset, train, gpus, "the Ray cluster")
        return
    with pytest.raises(TrainError) as caught:
        require_hardware(preset, train, gpus, "the Ray cluster")
    assert message in str(caught.value)


def test_search_settings_on_a_cluster_without_gpus_are_refused() -> None:
    """The driver's second check, once the cluster is known (here: zero GPUs)."""
    from nas.errors import BadInput

    settings = resolve_settings(SearchConfig(preset="gpu-nasnet"), has_gpu=False)
    with pytest.raises(BadInput, match="--preset gpu-nasnet is for GPUs, but the Ray cluster"):
        require_gpus(settings, 0.0, "the Ray cluster")
    require_gpus(resolve_settings(SearchConfig(), has_gpu=False), 0.0, "the Ray cluster")


@pytest.mark.parametrize(
    ("device", "message"),
    [
        ("cuda", "train.device 'cuda' asks for a GPU, but this machine has 0 CUDA device(s)"),
        ("cuda:0", "asks for a GPU"),
        ("tpu", "train.device 'tpu' is not"),
        ("nonsense", "train.device 'nonsense' is not a device"),
    ],
)
def test_the_trainer_refuses_a_device_it_cannot_use(device: str, message: str) -> None:
    with pytest.raises(TrainError, match=message.replace("(", r"\(").replace(")", r"\)")):
        resolve_device(device)
    assert resolve_device("auto").type == "cpu" and resolve_device("cpu").type == "cpu"
    assert TrainConfig(device=device).device == device  # validate() stays hardware-blind
