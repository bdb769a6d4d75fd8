#!/bin/bash
# Queue 1: every figure's runs that fit in a session, one figure command after another.
# Every figure gets --until "$UNTIL" when UNTIL is set; exit 0, 1 (a run failed, the rest
# went on) and 3 (runs left for later) go on to the next figure; 2, 130, 143 stop.
F=${IWX_FIG3:-/work/fig3}; cd "${IWX_REPO:-/work/main}" || exit 2
for figure in "3 --jobs 2" "adaptation_length" "4" "7" "ablation_radius" "mixture_prior" \
              "6" "2 --panels point_nav" "1 --panels reach_cpu" "1 --panels go_to_ring_cpu" \
              "1" "iwpl_samples"; do
  echo "[queue] $(date +%H:%M) figure $figure${UNTIL:+ --until $UNTIL}"
  .venv/bin/python -m iwx.figure $figure --runs-dir "$F/runs" ${UNTIL:+--until "$UNTIL"}
  rc=$?; echo "[queue] $(date +%H:%M) figure $figure exit $rc"
  [ $rc -eq 0 ] || [ $rc -eq 1 ] || [ $rc -eq 3 ] || break
done
