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
#   3. everything left (RL²), without --until;
#   4. pearl_budget: half-cheetah PEARL* seed 2 at 200k updates (about 420 min beside
#      another run), whether figure 2's PEARL* budget is long enough (docs/DECISIONS.md).
# Steps 2 to 4 start only while the session is young (at least LONG_MIN minutes before
# UNTIL) or in the tail (UNTIL unset): a long run begun mid-session would be in flight at
# its end, lost with the runs folder (it was in 2 of the last 3 sessions), where queue
# 1's list can fill the same time with runs that finish. Then, with --until when UNTIL is
# set, queue 1's list.
D=$(cd "$(dirname "$0")" && pwd)   # before the cd below: $0 may be a relative path
F=${IWX_FIG3:-/work/fig3}; cd "${IWX_REPO:-/work/main}" || exit 2
LONG="2 --panels cheetah_vel"
LONG_MIN=${LONG_MIN:-150}
list=()
if [ -n "$UNTIL" ]; then list+=("$LONG --until $UNTIL"); fi
young() {   # no UNTIL, or at least LONG_MIN minutes before it (HH:MM: today's, or tomorrow's)
  [ -z "$UNTIL" ] && return 0
  local now end; now=$(date +%s); end=$(date -d "$UNTIL" +%s) || return 1
  [ "$end" -gt "$now" ] || end=$((end + 86400))
  [ $(( (end - now) / 60 )) -ge "$LONG_MIN" ]
}
run() {
  echo "[queue2] $(date +%H:%M) figure $1 (long runs)"
  .venv/bin/python -m iwx.figure $1 --runs-dir "$F/runs"
  rc=$?; echo "[queue2] $(date +%H:%M) figure $1 exit $rc"
  [ $rc -eq 0 ] || [ $rc -eq 1 ] || [ $rc -eq 3 ] || exit $rc
}
for figure in "${list[@]}"; do run "$figure"; done
for figure in "$LONG --runs pearl" "$LONG" "pearl_budget"; do
  if young; then run "$figure"
  else echo "[queue2] $(date +%H:%M) figure $figure: under $LONG_MIN min before $UNTIL, left to the tail"
  fi
done
exec "$D/queue.sh"
