#!/bin/bash
# start.sh HH:MM: both queues with UNTIL=HH:MM (a few minutes before the session ends), a
# tail behind each, and the archiver if it is not running. Runs go into $IWX_FIG3/runs
# (default /work/fig3/runs; seed it from docs/records/cpu-runs on a new machine).
[ -n "$1" ] || { echo "usage: start.sh HH:MM" >&2; exit 2; }
D=$(cd "$(dirname "$0")" && pwd); F=${IWX_FIG3:-/work/fig3}; export UNTIL=$1
mkdir -p "$F/runs"
if [ -z "$(ls -A "$F/runs")" ]; then cp -r "$D/../cpu-runs/"* "$F/runs/"; fi
setsid nohup "$D/queue.sh" >> "$F/full.log" 2>&1 < /dev/null &  q1=$!
setsid nohup "$D/queue2.sh" >> "$F/full2.log" 2>&1 < /dev/null &  q2=$!
setsid nohup "$D/tail.sh" $q1 "$D/queue.sh" >> "$F/full.log" 2>&1 < /dev/null &
setsid nohup "$D/tail.sh" $q2 "$D/queue2.sh" >> "$F/full2.log" 2>&1 < /dev/null &
pgrep -f "$D/archive.sh" > /dev/null || \
  setsid nohup "$D/archive.sh" >> "$F/archive.log" 2>&1 < /dev/null &
echo "queues $q1 $q2 until $UNTIL; logs $F/full.log $F/full2.log $F/archive.log"
