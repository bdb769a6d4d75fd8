#!/bin/bash
# tail.sh PID QUEUE: wait for the --until queue PID, then run QUEUE (the same list) without
# UNTIL, so the session's last hour is not idle (docs/DECISIONS.md "The session's last hour").
pid=$1; queue=$2
while kill -0 "$pid" 2>/dev/null; do sleep 30; done
unset UNTIL; exec "$queue"
