#!/usr/bin/env bash
# Prepare the GPU check here (with network and ../shared): a small real CIFAR-10 subset and
# the pytest wheels go into .gpu-check/ (git-ignored, carried by the device tool:
# `carry: [".gpu-check"]`, about 9 MiB). Usage: benchmarks/gpu_check_prep.sh [CIFAR10_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
"$python" benchmarks/gpu_check.py --prepare --source "${1:-../shared/data/cifar10}"
rm -rf .gpu-check/wheels
# The GPU machine runs Python 3.12 with no network; pytest may be absent there.
"$python" -m pip download --quiet --only-binary=:all: --python-version 3.12 \
    --dest .gpu-check/wheels pytest
ls .gpu-check/wheels
du -sh --apparent-size .gpu-check
