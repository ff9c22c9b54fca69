"""The GPU check (benchmarks/gpu_check.sh, .py) stays runnable on a machine like the GPU
one: the training path imports without optuna, sqlalchemy, alembic, pydantic and ray, the
measurement walks end to end on the CPU (dry run, tiny steps), and without a GPU the check
says so in one line and exits non-zero."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_data import make_small_cifar

ROOT = Path(__file__).resolve().parents[1]
BLOCKED = "optuna,sqlalchemy,alembic,pydantic,ray"


def run(args: list[str], timeout: float = 300, **env: str) -> subprocess.CompletedProcess[str]:
    """A fresh interpreter in which the service packages cannot be imported."""
    full = {**os.environ, "NAS_BLOCK_IMPORTS": BLOCKED,
            "PYTHONPATH": f"{ROOT / 'benchmarks' / 'no_service_deps'}{os.pathsep}{ROOT}", **env}
    return subprocess.run(args, cwd=ROOT, env=full, capture_output=True, text=True,
                          timeout=timeout, check=False)


def test_the_blocker_blocks() -> None:
    done = run([sys.executable, "-c", "import optuna"])
    assert done.returncode == 1 and "blocked by NAS_BLOCK_IMPORTS" in done.stderr


def test_the_training_path_imports_without_the_service_packages() -> None:
    modules = ("search_spaces", "workers.train", "workers.trial", "workers.presets",
               "workers.data", "workers.imagefolder", "workers.checkpoint", "nas.results.export",
               "nas.training.transfer")
    done = run([sys.executable, "-c", f"import {', '.join(modules)}"])
    assert done.returncode == 0, done.stderr


def test_the_dry_run_measures_on_the_cpu(cifar_dir: Path, tmp_path: Path) -> None:
    data = make_small_cifar(cifar_dir, tmp_path / "cifar10", train=30, test=10)
    out = tmp_path / "out"
    done = run([sys.executable, "benchmarks/gpu_check.py", "--measure", "--quick"],
               NAS_GPU_CHECK_DEVICE="cpu", NAS_GPU_CHECK_DATA=str(data), OUT=str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads((out / "gpu_check.json").read_text())
    assert figures["dry_run"] and figures["device"] == "cpu"
    assert [r["network"] for r in figures["throughput"]] == ["ResNet-18 (CIFAR)"] * 2
    for row in figures["throughput"]:
        assert row["images_per_s"] > 0 and row["plain_images_per_s"] > 0
        assert row["ratio"] == pytest.approx(row["images_per_s"]
                                             / row["model_only_images_per_s"], rel=0.01)
    assert figures["epoch"]["how"].startswith("extrapolated from 2 timed steps")
    assert "DRY RUN" in (out / "gpu_check_table.txt").read_text()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("command", [["bash", "benchmarks/gpu_check.sh"],
                                     [sys.executable, "benchmarks/gpu_check.py", "--measure"]])
def test_without_a_gpu_the_check_says_so_in_one_line(command: list[str],
                                                     tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "NAS_GPU_CHECK_DEVICE"}
    env.update(OUT=str(tmp_path / "out"), PYTHON=sys.executable)
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 3, done.stderr
    assert done.stderr.count("\n") == 1 and "no CUDA device here" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
