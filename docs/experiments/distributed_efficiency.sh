#!/usr/bin/env bash
# Sample efficiency of DistributedTraining against the single-process loop (issue 13):
# IWPL on sparse 2D navigation, 3 seeds each of the single-process loop and of 2 and 4
# actors, all at the single loop's samples per insert (16: 8 updates x 32 x 10 per
# 8 episodes x 20 steps), 15000 updates, no adaptation. Every run is an ordinary
# recorded, resumable run: rerunning this script continues or reuses them.
#   bash docs/experiments/distributed_efficiency.sh [RUNS_DIR]
#   python -m iwx.report RUNS_DIR --tag distributed-efficiency \
#       --group-by DistributedTraining.actors --out docs/distributed_efficiency
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${1:-runs}
PY=${PYTHON:-.venv/bin/python}
common=(--gin gin/point_nav_iwpl.gin --runs-dir "$RUNS" --no-progress
        --tag distributed-efficiency
        --gin_param 'MultiTaskTraining.updates = 15000'
        --gin_param 'pretrain_and_adapt.variants = {}')
for seed in 0 1 2; do
    "$PY" -m iwx.run "${common[@]}" --seed "$seed"
    for actors in 2 4; do
        "$PY" -m iwx.run "${common[@]}" --seed "$seed" \
            --gin_param 'pretrain_and_adapt.training = @DistributedTraining()' \
            --gin_param "DistributedTraining.actors = $actors"
    done
done
