#!/usr/bin/env bash
# Build and run the srd-fabric MPI test suite through Open MPI's pml cm + mtl ofi.
# See README.md. Exit status is nonzero if any program failed.
set -u

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
BIN="$HERE/bin"
LOGDIR="$HERE/logs"

# One-sided over btl ofi (DESIGN §8): pml cm + mtl ofi keep point-to-point,
# osc rdma drives btl ofi's RMA and atomics. FI_LOG_LEVEL=info makes srd log
# each remote-access MR it registers and, when it is closed, how many remote
# accesses it served (check_btl_srd).
OSC_RDMA="--mca btl ofi,self --mca osc rdma --mca osc_rdma_btls ofi -x FI_LOG_LEVEL=info -x FI_LOG_PROV=srd"

# name | default ranks | binary | arguments | extra mpirun arguments | what it checks
TESTS=(
  "pingpong|2|pingpong|||point-to-point at every size around protocol cut-offs 0 B..64 MiB; Send, Isend/Irecv, Ssend"
  "wildcard|4|wildcard|||ANY_SOURCE/ANY_TAG matching, non-overtaking, exact+wildcard mixes, many senders"
  "probe|2|probe|||Probe/Iprobe/Mprobe/Improbe+Mrecv, status fields, below/above eager"
  "cancel|2|cancel|||MPI_Cancel of unmatched receives, of a completed receive, racing cancel"
  "manyops|4|manyops|||1000 outstanding Irecv + 1000 Isend per rank, Waitall/Testsome"
  "collectives|5|collectives|||Bcast, Reduce, Allreduce, Allgather, Alltoall(v), Barrier"
  "stress8|8|stress|||random matching stress, 8 ranks, exact/partial/full wildcard receives"
  "stress16|16|stress|||random matching stress, 16 ranks oversubscribed"
  "onesided|3|onesided||--mca osc pt2pt|Put, Get, Accumulate, Fetch_and_op, Compare_and_swap (osc pt2pt over pml cm)"
  "onesided_rdma|3|onesided_rdma|-o rdma -g -m 1000|$OSC_RDMA|Put/Get/Acc/Get_acc/FOP/CAS x fence/lock/lock_all/PSCW, contiguous+strided (osc rdma over btl ofi)"
  "onesided_pt2pt|3|onesided_rdma|-o pt2pt -m 1000|--mca osc pt2pt|the same through osc pt2pt over pml cm"
)

usage() {
  cat <<EOF
usage: $0 [options]
  --provider P      libfabric provider (default: srd). For anything but srd the
                    Open MPI ofi exclude list is cleared (tcp, udp are on it).
  --provider-path D FI_PROVIDER_PATH (default: \$FI_PROVIDER_PATH, else
                    $REPO/target/release/libfabric; only passed for srd unless given)
  --np N            ranks for every program (default: per program, see --list)
  --only NAME       run only NAME (repeatable, or comma separated)
  --args "A B"      extra arguments for the selected programs (e.g. pingpong sizes)
  --hosts h1,h2     mpirun --host h1,h2
  --agent CMD       mpirun --mca plm_rsh_agent CMD (e.g. for network namespaces)
  --env K=V         extra environment for the ranks (-x K=V), repeatable
  --mca K V         extra Open MPI MCA parameter, repeatable
  --timeout S       per-program timeout in seconds (default 300); a hang is a failure
  --no-build        do not run make
  --list            list the programs and exit
Output: one line per program (PASS/FAIL, seconds), then "N passed, M failed".
Logs: $LOGDIR/<name>.log
EOF
}

PROV=srd
PPATH=${FI_PROVIDER_PATH:-}
PPATH_GIVEN=${FI_PROVIDER_PATH:+1}
NP=""
ONLY=()
EXTRA_ARGS=""
HOSTS=""
AGENT=""
ENVS=()
MCAS=()
TIMEOUT=300
BUILD=1
LIST=0

while [ $# -gt 0 ]; do
  case "$1" in
    --provider) PROV=$2; shift 2 ;;
    --provider-path) PPATH=$2; PPATH_GIVEN=1; shift 2 ;;
    --np) NP=$2; shift 2 ;;
    --only) IFS=, read -r -a o <<<"$2"; ONLY+=("${o[@]}"); shift 2 ;;
    --args) EXTRA_ARGS=$2; shift 2 ;;
    --hosts) HOSTS=$2; shift 2 ;;
    --agent) AGENT=$2; shift 2 ;;
    --env) ENVS+=("$2"); shift 2 ;;
    --mca) MCAS+=(--mca "$2" "$3"); shift 3 ;;
    --timeout) TIMEOUT=$2; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --list) LIST=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown option: $1" >&2; usage >&2; exit 2 ;;
  esac
done

if [ "$LIST" = 1 ]; then
  for t in "${TESTS[@]}"; do
    IFS='|' read -r name np bin args xmpi desc <<<"$t"
    printf '%-14s np=%-3s %s\n' "$name" "$np" "$desc"
  done
  exit 0
fi

selected() {
  [ ${#ONLY[@]} -eq 0 ] && return 0
  local o
  for o in "${ONLY[@]}"; do [ "$o" = "$1" ] && return 0; done
  return 1
}

for o in "${ONLY[@]}"; do
  found=0
  for t in "${TESTS[@]}"; do [ "${t%%|*}" = "$o" ] && found=1; done
  [ $found = 1 ] || { echo "unknown program: $o (see --list)" >&2; exit 2; }
done

if [ "$BUILD" = 1 ]; then
  make -s -C "$HERE" >"$HERE/.build.log" 2>&1 || { cat "$HERE/.build.log" >&2; echo "build failed" >&2; exit 2; }
fi
mkdir -p "$LOGDIR"

if [ -z "$PPATH" ]; then PPATH="$REPO/target/release/libfabric"; fi
MPIRUN_ARGS=(--allow-run-as-root --oversubscribe --mca pml cm --mca mtl ofi
             --mca mtl_ofi_verbose 1 -x "FI_PROVIDER=$PROV")
if [ "$PROV" = srd ] || [ -n "$PPATH_GIVEN" ]; then
  [ -d "$PPATH" ] || echo "warning: FI_PROVIDER_PATH $PPATH does not exist" >&2
  MPIRUN_ARGS+=(-x "FI_PROVIDER_PATH=$PPATH")
fi
# Open MPI's ofi components skip tcp, udp, shm, sockets, ... by default.
[ "$PROV" != srd ] && MPIRUN_ARGS+=(--mca mtl_ofi_provider_exclude none --mca btl_ofi_provider_exclude none)
[ -n "$HOSTS" ] && MPIRUN_ARGS+=(--host "$HOSTS")
[ -n "$AGENT" ] && MPIRUN_ARGS+=(--mca plm_rsh_agent "$AGENT")
for e in "${ENVS[@]}"; do MPIRUN_ARGS+=(-x "$e"); done
MPIRUN_ARGS+=("${MCAS[@]}")

# Kill any of our test binaries still running on this host (after a timeout).
kill_leftovers() {
  local exe=$1 p
  for p in /proc/[0-9]*; do
    [ "$(readlink "$p/exe" 2>/dev/null)" = "$exe" ] && kill -9 "${p#/proc/}" 2>/dev/null
  done
}

# Every rank prints "mtl:ofi:prov: <name>" (mtl_ofi_component.c, verbose >= 1).
# The provider counts as used if <name> is PROV or PROV layered under a utility
# provider ("tcp;ofi_rxm" for tcp). Prints the names seen; fails unless all np
# ranks reported the intended provider.
check_provider() {
  local log=$1 np=$2 seen ok=0 bad=0 name
  seen=$(grep -o 'mtl:ofi:prov: [^ ]*' "$log" | sed 's/^mtl:ofi:prov: //' | tr -d '\r')
  while IFS= read -r name; do
    [ -z "$name" ] && continue
    if [ "$name" = "$PROV" ] || [ "${name#"$PROV";}" != "$name" ]; then ok=$((ok + 1)); else bad=$((bad + 1)); fi
  done <<<"$seen"
  PROV_SEEN=$(sort -u <<<"$seen" | tr '\n' ' ')
  [ $bad -eq 0 ] && [ $ok -ge "$np" ]
}

# btl ofi is the only srd user that registers memory for remote access (mtl
# ofi asks for mr_mode 0), and srd logs "MR key K closed after serving N
# remote RMA/atomic accesses" at info level. Requires N > 0 for at least np
# MRs, i.e. every rank's window was reached through srd.
check_btl_srd() {
  local log=$1 np=$2 served
  served=$(grep -a -o 'srd:mr:.*closed after serving [0-9]* remote' "$log" |
           grep -o 'serving [0-9]*' | awk '$2 > 0 { n++; s += $2 } END { printf "%d %d", n, s }')
  BTL_SEEN="${served% *} MRs served ${served#* } accesses"
  [ "${served% *}" -ge "$np" ]
}

# The most telling line of a failed run's log.
first_error() {
  local p
  for p in 'FAIL:' 'cannot be selected' 'Segmentation|signal [0-9]|core dumped' 'fi_getinfo\(\): No data' '[Ee]rror'; do
    grep -m1 -E "$p" "$1" && return
  done
}

pass=0
fail=0
echo "provider: $PROV  (log dir $LOGDIR)"
for t in "${TESTS[@]}"; do
  IFS='|' read -r name np bin args xmpi desc <<<"$t"
  selected "$name" || continue
  [ -n "$NP" ] && np=$NP
  log="$LOGDIR/$name.log"
  # shellcheck disable=SC2086
  cmd=(mpirun "${MPIRUN_ARGS[@]}" $xmpi -np "$np" "$BIN/$bin" $args $EXTRA_ARGS)
  echo "${cmd[*]}" >"$log"
  start=$EPOCHREALTIME
  timeout -k 10 "$TIMEOUT" "${cmd[@]}" </dev/null >>"$log" 2>&1
  rc=$?
  secs=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }')
  why=""
  if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
    why="timeout after ${TIMEOUT}s (hang)"
    kill_leftovers "$BIN/$bin"
  elif [ $rc -ne 0 ]; then
    why="exit $rc: $(first_error "$log")"
  elif ! grep -q "^PASS $bin\$" "$log"; then
    why="no PASS line"
  fi
  PROV_SEEN=""
  if ! check_provider "$log" "$np"; then
    why="${why:+$why; }provider check: wanted $PROV on $np ranks, saw '${PROV_SEEN% }'"
  fi
  BTL_SEEN=""
  case "$xmpi" in
    *"btl ofi"*)
      if [ "$PROV" = srd ] && ! check_btl_srd "$log" "$np"; then
        why="${why:+$why; }btl ofi check: wanted srd MRs serving remote accesses on $np ranks, saw $BTL_SEEN"
      fi ;;
  esac
  if [ -z "$why" ]; then
    printf 'PASS %-14s %7.2fs  np=%s prov=%s%s\n' "$name" "$secs" "$np" "${PROV_SEEN% }" "${BTL_SEEN:+ btl ofi: $BTL_SEEN}"
    pass=$((pass + 1))
  else
    printf 'FAIL %-14s %7.2fs  np=%s %s\n' "$name" "$secs" "$np" "$why"
    fail=$((fail + 1))
  fi
done
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
