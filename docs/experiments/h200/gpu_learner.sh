#!/usr/bin/env bash
# The H200 measurement in docs/TASKS.md ("The learner on a GPU"), as it ran: the device
# machine had torch but not gin-config / gymnasium, which travelled as wheels in .whl/.
# GPU=cpu PY=python OUT=dir runs the same rows on a CPU-only machine.
# Rows: the learner update on the GPU against the same machine's CPU, GTT-like widths, the cpu scale's batch (64) and the paper's (512).
set -u
GPU=${GPU:-cuda}; SECS=${SECS:-4}
if [ "$GPU" = cuda ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
  nvidia-smi -L; nproc; python3 -c 'import torch; print(torch.__version__, torch.cuda.get_device_name())'
fi
export PYTHONUNBUFFERED=1 MUJOCO_GL=disable
PY=${PY:-python3}
B="$PY -m iwx.bench --tasks none --ks 20 --envs 8 --seconds $SECS --rounds 2"
log=$OUT/log.txt
run() { echo "=== $*" | tee -a $log; timeout 150 $B "$@" 2>&1 | tee -a $log; }
run --device $GPU --batch-size 512 --gin_param 'WIDTH = 256' --methods none --json $OUT/g_w256_b512.json
run --device $GPU --batch-size 512 --gin_param 'WIDTH = 128' --methods all --json $OUT/g_w128_b512.json
run --device $GPU --batch-size 64 --gin_param 'WIDTH = 128' --methods none --json $OUT/g_w128_b64.json
run --device cpu --batch-size 512 --gin_param 'WIDTH = 256' --methods none --no-adaptation --json $OUT/c1_w256_b512.json
run --device cpu --threads 8 --batch-size 512 --gin_param 'WIDTH = 256' --methods none --no-adaptation --json $OUT/c8_w256_b512.json
echo ALL DONE | tee -a $log
