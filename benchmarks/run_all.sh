#!/usr/bin/env bash
# Run the benchmarks (full sizes unless --quick is passed) one after another,
# appending every JSON line to OUTDIR/bench.jsonl and stderr to OUTDIR/bench.err,
# each under a time cap, and all before a deadline, so a short lease on a GPU
# machine returns whatever finished. Order: most wanted first.
#
#   bash benchmarks/run_all.sh OUTDIR [SECONDS_BUDGET] [--quick]
#
# PYTHON picks the interpreter (default: python).
set -u
out=${1:?usage: run_all.sh OUTDIR [SECONDS_BUDGET] [--quick]}
budget=${2:-3600}
shift $(( $# >= 2 ? 2 : 1 ))
py=${PYTHON:-python}
mkdir -p "$out"
deadline=$((SECONDS + budget))
# name:cap_seconds
for item in network:150 mvm:90 first_call:60 normals:60 spiking:180 device_models:120 solver:240 sweep:300 training:240; do
  name=${item%%:*}
  cap=${item##*:}
  left=$((deadline - SECONDS))
  if ((left < 20)); then
    echo "skip $name: budget spent" | tee -a "$out/bench.err"
    continue
  fi
  ((cap > left)) && cap=$left
  echo "== $name (cap ${cap}s) $(date -u +%T)" | tee -a "$out/bench.err"
  timeout "$cap" "$py" "benchmarks/$name.py" "$@" >>"$out/bench.jsonl" 2>>"$out/bench.err"
  rc=$?
  ((rc != 0)) && echo "$name exited $rc" | tee -a "$out/bench.err"
done
exit 0
