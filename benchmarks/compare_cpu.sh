#!/usr/bin/env bash
# The comparison of docs/results/comparison.md on 2 CPU cores, one model after another, with
# nothing else on the machine (under a clock budget, other load costs accuracy):
#   1. search: a 45-minute `cpu-search` (validation accuracy after 180 s of training, successive
#      halving at 10/30/90/180 s, N, F and the stem stride searched beside the cell) gives
#      study s1;
#   2. cifar: the decisive rows first, every model under cpu-compare, the same 180 s each, its
#      lr picked from the preset's grid by short runs scored on the validation split (the test
#      split is read once, by the final scoring): s1:best at seeds 0 and 1; the three
#      strongest baselines of the last comparison (LeNet-5, ResNet-18, MobileNet v1) at seeds 0
#      and 1; NASNet-A 1@96 with a stride-2 stem (the control: is it the cell or the stem?);
#   3. cifar-rest: the other five baselines and the three published cells at the paper's
#      stride-1 stem, seed 0;
#   4. transfer: Imagenette at the ImageNet layout under cpu-transfer (s1:best, mobilenet-v1,
#      resnet18, nasnet-a);
#   5. compare: `nas compare` prints the table and draws the plots.
# Usage: benchmarks/compare_cpu.sh WORKDIR CIFAR10_DIR IMAGENETTE_DIR [STEP...]
# STEP is search, cifar, cifar-rest, transfer, compare (default: all five, in that order).
# Every model goes into WORKDIR/nas.db (copy it to docs/results/comparison.db); logs with
# /usr/bin/time -v figures go to WORKDIR/*.log. SEARCH_TIMEOUT (default 2700 s) shortens the
# search; STUDY (default s1) names the study, so that a new search can go into a copy of
# docs/results/comparison.db beside the earlier one (STUDY=s2); PRUNER (default sha, successive
# halving on the clock) is `nas search --pruner`.
set -euo pipefail
work=$(realpath "$1"); cifar=$(realpath "$2"); imagenette=$(realpath "$3"); shift 3
steps=${*:-search cifar cifar-rest transfer compare}
nas=${NAS:-nas}
study=${STUDY:-s1}
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
        timed search.log "$nas" search --preset cpu-search --study "$study" \
            --timeout "${SEARCH_TIMEOUT:-2700}" --pruner "${PRUNER:-sha}" --data "$cifar" ;;
    cifar)
        for seed in 0 1; do
            timed "train-$study-best-s$seed.log" "$nas" train "$study:best" --preset cpu-compare \
                --data "$cifar" --out runs --seed "$seed" --json
        done
        for seed in 0 1; do
            timed "baselines-top3-s$seed.log" "$nas" baselines --layout cifar \
                --preset cpu-compare --arch lenet5,resnet18,mobilenet-v1 --data "$cifar" \
                --out runs --seed "$seed" --json
        done
        timed train-nasnet-a-stride2-s0.log "$nas" train nasnet-a --stem-stride 2 \
            --preset cpu-compare --data "$cifar" --out runs --seed 0 --json ;;
    cifar-rest)
        timed baselines-rest-s0.log "$nas" baselines --layout cifar --preset cpu-compare \
            --arch alexnet,vgg16,googlenet,inception-resnet-v2,mobilenet-v2 --data "$cifar" \
            --out runs --seed 0 --json
        for ref in nasnet-a amoebanet-a darts-v2; do
            timed "train-$ref-s0.log" "$nas" train "$ref" --preset cpu-compare \
                --data "$cifar" --out runs --seed 0 --json
        done ;;
    transfer)
        for ref in "$study:best" mobilenet-v1 resnet18 nasnet-a; do
            timed "transfer-${ref/:/-}.log" "$nas" transfer "$ref" --preset cpu-transfer \
                --data "$imagenette" --out runs --json
        done ;;
    compare)
        "$nas" compare --plot comparison.png | tee compare.txt
        "$nas" compare --json > compare.json ;;
    *) echo "unknown step $step: use search, cifar, cifar-rest, transfer, compare" >&2
       exit 2 ;;
    esac
done
