#!/bin/bash
# Queue 2, the long runs: figure 2's half-cheetah RL² at 200k updates (about 193 min alone
# at full speed, 300 estimated beside other runs) and PEARL* (about 140 min alone, 229
# measured beside other runs) never fit under --until, so this queue runs them without it,
# from the session's first minute. A run cut by the session's end resumes from its
# checkpoint only if the next session's machine comes back with its runs folder
# (docs/DECISIONS.md "Runs longer than a session"), so the order keeps as little as
# possible in flight at a session's end:
#   1. with --until UNTIL: what fits, the run a checkpoint says was going first
#      (iwx.figure starts a checkpointed run before fresh ones) — and PEARL* when the
#      session is young enough for it;
#   2. PEARL*, which fits in a session when it starts early, so a lost machine costs
#      least;
#   3. everything left (RL²), without --until.
# Then, with --until when UNTIL is set, queue 1's list, for when the long runs are done.
D=$(cd "$(dirname "$0")" && pwd)   # before the cd below: $0 may be a relative path
F=${IWX_FIG3:-/work/fig3}; cd "${IWX_REPO:-/work/main}" || exit 2
LONG="2 --panels cheetah_vel"
list=()
if [ -n "$UNTIL" ]; then list+=("$LONG --until $UNTIL"); fi
list+=("$LONG --runs pearl" "$LONG")
for figure in "${list[@]}"; do
  echo "[queue2] $(date +%H:%M) figure $figure (long runs)"
  .venv/bin/python -m iwx.figure $figure --runs-dir "$F/runs"
  rc=$?; echo "[queue2] $(date +%H:%M) figure $figure exit $rc"
  [ $rc -eq 0 ] || [ $rc -eq 1 ] || [ $rc -eq 3 ] || exit $rc
done
exec "$D/queue.sh"
