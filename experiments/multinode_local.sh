#!/usr/bin/env bash
# Two "nodes" on one machine: what a multi-node run does, without a cluster.
#
# Starts experiments/cls.py twice with --trainer.num_nodes 2 (one process per "node", CPU, gloo),
# NODE_RANK 0 and 1, MASTER_ADDR=127.0.0.1: the same environment variables you would set by hand
# on two real machines (there MASTER_ADDR is node 0's address and RUN_DIR a shared filesystem).
# Extra arguments go to both processes, e.g.
#
#   bash experiments/multinode_local.sh --backbone resnet18 --trainer.max_epochs 1
#
# Exits non-zero if either process fails.
set -euo pipefail
cd "$(dirname "$0")/.."

export MASTER_ADDR=127.0.0.1
export MASTER_PORT="${MASTER_PORT:-29512}"
RUN_DIR="${RUN_DIR:-runs/cls/multinode_local}"
PYTHON="${PYTHON:-python}"

pids=()
for node_rank in 0 1; do
    NODE_RANK=$node_rank "$PYTHON" experiments/cls.py \
        --trainer.num_nodes 2 --trainer.devices 1 --trainer.accelerator cpu --trainer.strategy ddp \
        --run_dir "$RUN_DIR" "$@" &
    pids+=($!)
done
status=0
for pid in "${pids[@]}"; do
    wait "$pid" || status=$?
done
exit "$status"
