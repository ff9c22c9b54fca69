#!/usr/bin/env bash
# The comparison of docs/results/comparison.md on 2 CPU cores, one model after another:
#   1. a 6-trial cpu-quick search (study s1) gives the best searched cell;
#   2. Imagenette at the ImageNet layout under cpu-transfer: the best cell, mobilenet-v1,
#      resnet18 (the issue's three), then NASNet-A;
#   3. CIFAR-10 under cpu-compare: the eight baselines, the three published genotypes and
#      the best searched cell, each given the same 180 s of training;
#   4. `nas compare` prints the table and draws the plots.
# Usage: benchmarks/compare_cpu.sh WORKDIR CIFAR10_DIR IMAGENETTE_DIR [STEP...]
# STEP is search, transfer, cifar, compare (default: all four, in that order). Every model
# goes into WORKDIR/nas.db; logs with /usr/bin/time -v figures go to WORKDIR/*.log.
set -euo pipefail
work=$(realpath "$1"); cifar=$(realpath "$2"); imagenette=$(realpath "$3"); shift 3
steps=${*:-search transfer cifar compare}
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
        timed search.log "$nas" search --preset cpu-quick --study s1 --trials 6 --data "$cifar" ;;
    transfer)
        for ref in s1:best mobilenet-v1 resnet18 nasnet-a; do
            timed "transfer-${ref/:/-}.log" "$nas" transfer "$ref" --preset cpu-transfer \
                --data "$imagenette" --out runs --json
        done ;;
    cifar)
        timed baselines.log "$nas" baselines --layout cifar --preset cpu-compare \
            --data "$cifar" --out runs --json
        for ref in nasnet-a amoebanet-a darts-v2 s1:best; do
            timed "train-${ref/:/-}.log" "$nas" train "$ref" --preset cpu-compare \
                --data "$cifar" --out runs --json
        done ;;
    compare)
        "$nas" compare --plot comparison.png | tee compare.txt
        "$nas" compare --json > compare.json ;;
    *) echo "unknown step $step: use search, transfer, cifar, compare" >&2; exit 2 ;;
    esac
done
