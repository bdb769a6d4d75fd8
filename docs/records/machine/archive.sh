#!/bin/bash
# The archiver: every two minutes, archive.py copies the runs that finished into
# docs/records/cpu-runs and commits them (docs/records only).
D=$(cd "$(dirname "$0")" && pwd); F=${IWX_FIG3:-/work/fig3}; R=${IWX_REPO:-/work/main}
while true; do
  echo "[archive] $(date +%H:%M)"; "$R/.venv/bin/python" "$D/archive.py" "$F/runs" "$R"
  sleep 120
done
