#!/usr/bin/env bash
# A rank killed mid-job (kill_rank.c: rank 3 of 4 raises SIGKILL) must end
# the job, not hang. Runs every mode (stream: mid-exchange; blocked: ranks
# blocked in MPI_Recv from the dead rank) on the shared-memory path and over
# UDP (FI_SRD_SHM=0), twice:
#   orte     Open MPI's defaults: its daemon sees the death and kills the
#            job. Pass: non-zero exit within the timeout.
#   provider --mca orte_enable_recovery 1: the daemon lets the job run, so
#            only the srd provider's error completions can end it. Pass: the
#            job ends within the timeout and a survivor printed DETECTED (its
#            MPI call returned the provider's error; it then MPI_Aborts).
# Output: "PASS|FAIL <name> <seconds> [why]" per run, then "N passed, M failed".
# usage: mpi-tests/run-kill.sh [--timeout S] [--only NAME]
set -u

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
LOGDIR="$HERE/logs"
TIMEOUT=120
ONLY=""
while [ $# -gt 0 ]; do
  case "$1" in
    --timeout) TIMEOUT=$2; shift 2 ;;
    --only) ONLY=$2; shift 2 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
done

make -s -C "$HERE" bin/kill_rank || { echo "build failed" >&2; exit 2; }
mkdir -p "$LOGDIR"
PPATH=${FI_PROVIDER_PATH:-$REPO/target/release/libfabric}
BIN="$HERE/bin/kill_rank"

kill_leftovers() {
  local p
  for p in /proc/[0-9]*; do
    [ "$(readlink "$p/exe" 2>/dev/null)" = "$BIN" ] && kill -9 "${p#/proc/}" 2>/dev/null
  done
}

pass=0
fail=0
for mode in stream blocked; do
  for path in shm udp; do
    for who in orte provider; do
      name="kill-$mode-$path-$who"
      [ -n "$ONLY" ] && [ "$ONLY" != "$name" ] && continue
      log="$LOGDIR/$name.log"
      args=(--allow-run-as-root --oversubscribe --mca pml cm --mca mtl ofi
            -x FI_PROVIDER=srd -x "FI_PROVIDER_PATH=$PPATH")
      [ "$path" = udp ] && args+=(-x FI_SRD_SHM=0)
      [ "$who" = provider ] && args+=(--mca orte_enable_recovery 1)
      cmd=(mpirun "${args[@]}" -np 4 "$BIN" "$mode")
      echo "${cmd[*]}" >"$log"
      start=$EPOCHREALTIME
      timeout -k 10 "$TIMEOUT" "${cmd[@]}" </dev/null >>"$log" 2>&1
      rc=$?
      secs=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }')
      why=""
      if [ $rc -eq 124 ] || { [ $rc -eq 137 ] && [ "$who" = provider ]; }; then
        why="timeout after ${TIMEOUT}s (hang)"
        kill_leftovers
      elif grep -q "^FAIL" "$log"; then
        why="$(grep -m1 '^FAIL' "$log")"
      elif [ "$who" = orte ] && [ $rc -eq 0 ]; then
        why="exit status 0 with a dead rank"
      elif [ "$who" = provider ] && ! grep -q "^DETECTED" "$log"; then
        why="no survivor saw an error from the provider (exit $rc)"
      fi
      detail=$(grep -m1 "^DETECTED" "$log")
      if [ -z "$why" ]; then
        pass=$((pass + 1))
        echo "PASS $name ${secs}s ${detail}"
      else
        fail=$((fail + 1))
        echo "FAIL $name ${secs}s $why"
      fi
    done
  done
done
# Killed ranks cannot unlink their rings and stats pages; the next srd
# endpoint opened on the host removes those of dead processes. Check that a
# short job after the kills leaves none behind.
dead_segments() {
  local f b pid
  for f in /dev/shm/srd-*; do
    [ -e "$f" ] || continue
    b=${f##*/}
    pid=$(sed -n 's/^srd-\(stats-\)\{0,1\}[0-9]*-\([0-9]*\)-.*/\2/p' <<<"$b")
    [ -n "$pid" ] && [ ! -d "/proc/$pid" ] && echo "$b"
  done
}
if [ -z "$ONLY" ]; then
  before=$(dead_segments | wc -l)
  make -s -C "$HERE" bin/pingpong >/dev/null 2>&1
  timeout -k 10 "$TIMEOUT" mpirun --allow-run-as-root --oversubscribe --mca pml cm --mca mtl ofi \
    -x FI_PROVIDER=srd -x "FI_PROVIDER_PATH=$PPATH" -np 2 "$HERE/bin/pingpong" -m 1024 \
    </dev/null >"$LOGDIR/kill-sweep.log" 2>&1
  rc=$?
  left=$(dead_segments)
  if [ $rc -eq 0 ] && [ -z "$left" ]; then
    pass=$((pass + 1))
    echo "PASS kill-leftovers-swept ($before segments of killed ranks before the next job, 0 after)"
  else
    fail=$((fail + 1))
    echo "FAIL kill-leftovers-swept (next job exit $rc; left: $(echo $left))"
  fi
fi
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
