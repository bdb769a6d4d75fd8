#!/bin/bash
# Queue 2, the long runs: runs longer than a session (the mixture figure's Gaussian Reach
# seed 2, about 200 min; figure 2's half-cheetah RL² at 200k updates, about 300 min each,
# and PEARL*, about 230) never fit under --until, so this queue runs them without it,
# from the session's first minute; a run cut by the session's end resumes from its
# checkpoint when the next session starts this queue again, if the machine came back with
# its runs folder (docs/DECISIONS.md "Runs longer than a session"). Then, with --until
# when UNTIL is set, queue 1's list, for when the long runs are done.
D=$(cd "$(dirname "$0")" && pwd)   # before the cd below: $0 may be a relative path
F=${IWX_FIG3:-/work/fig3}; cd "${IWX_REPO:-/work/main}" || exit 2
for figure in "mixture_prior --panels reach_cpu" "2 --panels cheetah_vel"; do
  echo "[queue2] $(date +%H:%M) figure $figure (long runs: no --until)"
  .venv/bin/python -m iwx.figure $figure --runs-dir "$F/runs"
  rc=$?; echo "[queue2] $(date +%H:%M) figure $figure exit $rc"
  [ $rc -eq 0 ] || [ $rc -eq 1 ] || [ $rc -eq 3 ] || exit $rc
done
exec "$D/queue.sh"
