#!/usr/bin/env bash
# The one device check of the CUDA path (docs/results/gpu.md), at most 8 minutes on one GPU:
#   1. pytest from the carried wheels when the machine has none (no network needed);
#   2. the `cuda` tests (tests/test_cuda.py) on the carried CIFAR-10 subset;
#   3. benchmarks/gpu_check.py --measure: the throughput table, the epoch, the memory peak.
# Everything it prints also goes to $OUT/gpu_check.log (OUT defaults to ./gpu-check-out),
# the figures to $OUT/gpu_check.json. Prepare first, here: benchmarks/gpu_check_prep.sh.
# NAS_GPU_CHECK_DEVICE=cpu is the dry run (the tests and the figures on the CPU, tiny steps).
set -uo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
out=${OUT:-gpu-check-out}
mkdir -p "$out"
log="$out/gpu_check.log"
: >"$log"
say() { echo "gpu_check: $*" | tee -a "$log"; }

device=${NAS_GPU_CHECK_DEVICE:-cuda}
if [ "$device" != cpu ] && ! "$python" -c \
        "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>>"$log"; then
    say "no CUDA device here (torch.cuda.is_available() is False); run it on a GPU machine," \
        "or set NAS_GPU_CHECK_DEVICE=cpu for the dry run" >&2
    exit 3
fi
if [ ! -d .gpu-check/data/cifar10 ]; then
    say ".gpu-check/data/cifar10 is missing; run benchmarks/gpu_check_prep.sh here and" \
        "carry .gpu-check" >&2
    exit 2
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
# NAS_GPU_CHECK_WHEELS=1 takes the carried wheels even where pytest exists (the dry run).
if [ -n "${NAS_GPU_CHECK_WHEELS:-}" ] || ! "$python" -c "import pytest" 2>/dev/null; then
    scratch=$(mktemp -d)  # not inside .gpu-check: that folder is only what is carried
    trap 'rm -rf "$scratch"' EXIT
    site=$scratch/site
    if ! "$python" -m pip install --quiet --no-index --find-links .gpu-check/wheels \
            --target "$site" pytest >>"$log" 2>&1; then
        say "pip could not install the carried wheels; unpacking them instead"
        for wheel in .gpu-check/wheels/*.whl; do "$python" -m zipfile -e "$wheel" "$site"; done
    fi
    export PYTHONPATH="$site:$PYTHONPATH"
fi
"$python" -c "import torch, pytest; print('gpu_check: python', __import__('sys').version.split()[0],
      '| torch', torch.__version__, '| CUDA', torch.version.cuda, '| pytest', pytest.__file__,
      '|', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU')" \
    2>&1 | tee -a "$log"
if command -v nvidia-smi >/dev/null; then nvidia-smi >>"$log" 2>&1; fi

say "cuda tests"
# On the GPU the tests take about a minute; a dry run on a loaded 2-core CPU may take minutes.
test_device=$([ "$device" = cpu ] && echo cpu || echo cuda)
test_limit=$([ "$device" = cpu ] && echo 900 || echo 240)
NAS_SHARED_DATA="$PWD/.gpu-check/data" NAS_CUDA_TEST_DEVICE=$test_device \
    timeout "$test_limit" "$python" -m pytest -p no:cacheprovider -q -rs -s tests/test_cuda.py \
    2>&1 | tee -a "$log"
tests=${PIPESTATUS[0]}
say "cuda tests exit $tests"

say "measurements"
NAS_GPU_CHECK_DEVICE=$device timeout 210 "$python" benchmarks/gpu_check.py --measure \
    --out "$out" 2>&1 | tee -a "$log"
figures=${PIPESTATUS[0]}
say "measurements exit $figures; log $log, figures $out/gpu_check.json"
[ "$tests" -eq 0 ] && [ "$figures" -eq 0 ]
