#!/bin/sh
# Start a Ray worker node that joins the head at RAY_HEAD_ADDRESS and stays in the foreground.
#
# RAY_WORKER_GPUS=all (default): this worker takes every GPU the container sees; Ray packs
# trials onto them itself. Run one such worker per machine.
# RAY_WORKER_GPUS=k: this worker claims the first free slot of k GPUs on this machine (a lock
# in /gpu-slots, a volume shared by the workers of one machine) and its share of the CPUs.
# Docker gives every container that reserves "1 GPU" the same GPU 0, so this is what makes
# `docker compose up --scale ray-worker=N` spread N workers over N GPU groups.
set -eu

head="${RAY_HEAD_ADDRESS:-ray-head:6379}"
per="${RAY_WORKER_GPUS:-all}"
set -- ray start --address="$head" --block --disable-usage-stats "$@"

if [ "$per" = "all" ]; then
  exec "$@"
fi
case "$per" in
  ''|*[!0-9]*) echo "ray-worker: RAY_WORKER_GPUS must be 'all' or a whole number, not '$per'" >&2; exit 2 ;;
esac
if [ "$per" -eq 0 ]; then
  exec "$@" --num-gpus=0
fi

total="$(python -c 'import torch; print(torch.cuda.device_count())')"
slots=$((total / per))
if [ "$slots" -lt 1 ]; then
  echo "ray-worker: RAY_WORKER_GPUS=$per but this container sees $total GPU(s)" >&2
  exit 2
fi
cpus=$(($(nproc) / slots))
[ "$cpus" -ge 1 ] || cpus=1

slot=0
while [ "$slot" -lt "$slots" ]; do
  # fd 9 stays open in `ray start --block` after exec: the lock lives as long as the worker.
  exec 9>"${NAS_GPU_SLOTS_DIR:-/gpu-slots}/slot-$per-$slot.lock"
  if flock -n 9; then
    first=$((slot * per))
    CUDA_VISIBLE_DEVICES="$(seq -s, "$first" $((first + per - 1)))"
    export CUDA_VISIBLE_DEVICES
    echo "ray-worker: slot $slot of $slots: GPUs $CUDA_VISIBLE_DEVICES, $cpus CPUs"
    exec "$@" --num-gpus="$per" --num-cpus="$cpus"
  fi
  exec 9>&-
  slot=$((slot + 1))
done
echo "ray-worker: all $slots slots of $per GPU(s) on this machine are taken; scale ray-worker down or lower RAY_WORKER_GPUS" >&2
exit 1
