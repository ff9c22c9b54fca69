#!/bin/sh
# Entrypoint of every nas container. Before the command runs:
#  - NAS_WAIT_FOR_DB=1: wait (bounded, with back-off) until the database in NAS_STORAGE
#    accepts connections. depends_on covers `docker compose up`, but not a database that
#    restarts, `docker compose run`, or Kubernetes, where nothing orders the start.
#  - NAS_RAY_JOIN=HOST:PORT: join that Ray cluster as a node with no CPUs or GPUs, so the
#    driver can `ray.init(address=...)` it without Ray Client and keep its objects local.
set -eu

if [ "${NAS_WAIT_FOR_DB:-0}" = "1" ]; then
  nas wait-db
fi

if [ -n "${NAS_RAY_JOIN:-}" ]; then
  ray start --address="$NAS_RAY_JOIN" --num-cpus=0 --num-gpus=0 --disable-usage-stats
fi

exec "$@"
