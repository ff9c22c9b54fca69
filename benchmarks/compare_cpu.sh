#!/usr/bin/env bash
# The comparison of docs/results/comparison.md on 2 CPU cores, one model after another, with
# nothing else on the machine (under a clock budget, other load costs accuracy):
#   1. search: a 45-minute `cpu-search` (validation accuracy after 180 s of training, successive
#      halving at 10/30/90/180 s, N and F searched beside the cell) gives study s1;
#   2. cifar: every model under cpu-compare, the same 180 s each, its lr picked from the
#      preset's grid by short runs scored on the validation split (the test split is read once,
#      by the final scoring): the eight baselines, the three published cells and s1:best at
#      seed 0; then s1:best and the three strongest baselines of the last comparison (LeNet-5,
#      ResNet-18, MobileNet v1) again at seed 1, for the spread;
#   3. transfer: Imagenette at the ImageNet layout under cpu-transfer (s1:best, mobilenet-v1,
#      resnet18, nasnet-a);
#   4. compare: `nas compare` prints the table and draws the plots.
# Usage: benchmarks/compare_cpu.sh WORKDIR CIFAR10_DIR IMAGENETTE_DIR [STEP...]
# STEP is search, cifar, transfer, compare (default: all four, in that order). Every model goes
# into WORKDIR/nas.db (copy it to docs/results/comparison.db); logs with /usr/bin/time -v
# figures go to WORKDIR/*.log. SEARCH_TIMEOUT (default 2700 s) shortens the search.
set -euo pipefail
work=$(realpath "$1"); cifar=$(realpath "$2"); imagenette=$(realpath "$3"); shift 3
steps=${*:-search cifar transfer compare}
nas=${NAS:-nas}
export NAS_STORAGE="sqlite:///$work/nas.db"
mkdir -p "$work" && cd "$work"

timed() {  # timed LOG COMMAND...: run, keep stdout+stderr and the time figures in LOG
    local log=$1; shift
    echo "== $(date -u +%FT%TZ) $*" | tee -a "$log"
    /usr/bin/time -v "$@" >>"$log" 2>&1
}

for step in $steps; do
    case $step in
    search)
        timed search.log "$nas" search --preset cpu-search --study s1 \
            --timeout "${SEARCH_TIMEOUT:-2700}" --data "$cifar" ;;
    cifar)
        timed baselines-s0.log "$nas" baselines --layout cifar --preset cpu-compare \
            --data "$cifar" --out runs --seed 0 --json
        for ref in nasnet-a amoebanet-a darts-v2 s1:best; do
            timed "train-${ref/:/-}-s0.log" "$nas" train "$ref" --preset cpu-compare \
                --data "$cifar" --out runs --seed 0 --json
        done
        timed train-s1-best-s1.log "$nas" train s1:best --preset cpu-compare \
            --data "$cifar" --out runs --seed 1 --json
        timed baselines-s1.log "$nas" baselines --layout cifar --preset cpu-compare \
            --arch lenet5,resnet18,mobilenet-v1 --data "$cifar" --out runs --seed 1 --json ;;
    transfer)
        for ref in s1:best mobilenet-v1 resnet18 nasnet-a; do
            timed "transfer-${ref/:/-}.log" "$nas" transfer "$ref" --preset cpu-transfer \
                --data "$imagenette" --out runs --json
        done ;;
    compare)
        "$nas" compare --plot comparison.png | tee compare.txt
        "$nas" compare --json > compare.json ;;
    *) echo "unknown step $step: use search, cifar, transfer, compare" >&2; exit 2 ;;
    esac
done
