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
  "selfsend|2|selfsend|||Isend/Irecv to self 0 B..1 MiB, data verified; a small send to self is complete once its receive is"
  "cancel|2|cancel|||MPI_Cancel of unmatched receives, of a completed receive, racing cancel"
  "manyops|4|manyops|||1000 outstanding Irecv + 1000 Isend per rank, Waitall/Testsome"
  "collectives|5|collectives|||Bcast, Reduce, Allreduce, Allgather, Alltoall(v), Barrier"
  "stress8|8|stress|||random matching stress, 8 ranks, exact/partial/full wildcard receives"
  "stress16|16|stress|||random matching stress, 16 ranks oversubscribed"
  "storm|8|storm|-p storm -m 2000||7 ranks flood rank 0 while it is still in a barrier; it then receives 14000 messages ANY_SOURCE in per-sender order"
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
  --skip NAME       leave NAME out (repeatable, or comma separated)
  --args "A B"      extra arguments for the selected programs (e.g. pingpong sizes)
  --hosts h1,h2     mpirun --host h1,h2
  --agent CMD       mpirun --mca plm_rsh_agent CMD (e.g. for network namespaces)
  --netns H1,H2,..  across hosts of scripts/netns-cluster.sh: mpirun runs inside
                    namespace H1 with --host H1,H2,.. --map-by node, the agent
                    scripts/netns-agent, -x FI_SRD_IFACE=eth0 -x FI_SRD_STATS=1;
                    each program must also show (srd's per-endpoint counters)
                    endpoints on min(np, hosts) hosts, UDP datagrams sent and
                    received on every host and, with more ranks than hosts
                    (unless FI_SRD_SHM=0 is given), shm messages too
  --env K=V         extra environment for the ranks (-x K=V), repeatable
  --mca K V         extra Open MPI MCA parameter, repeatable
  --timeout S       per-program timeout in seconds (default 300); a hang is a failure
  --no-build        do not run make
  --logdir D        write the logs to D (default $LOGDIR)
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
SKIP=()
EXTRA_ARGS=""
HOSTS=""
AGENT=""
NETNS=""
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
    --skip) IFS=, read -r -a o <<<"$2"; SKIP+=("${o[@]}"); shift 2 ;;
    --args) EXTRA_ARGS=$2; shift 2 ;;
    --hosts) HOSTS=$2; shift 2 ;;
    --agent) AGENT=$2; shift 2 ;;
    --netns) NETNS=$2; shift 2 ;;
    --logdir) LOGDIR=$2; shift 2 ;;
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
  local o
  for o in "${SKIP[@]}"; do [ "$o" = "$1" ] && return 1; done
  [ ${#ONLY[@]} -eq 0 ] && return 0
  for o in "${ONLY[@]}"; do [ "$o" = "$1" ] && return 0; done
  return 1
}

for o in "${ONLY[@]}" "${SKIP[@]}"; do
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
# --netns: the cluster's hosts are namespaces; mpirun must run in the first one
# (the root namespace has no route to them).
LAUNCH=()
NET_HOSTS=()
SHM_OFF=0
if [ -n "$NETNS" ]; then
  IFS=, read -r -a NET_HOSTS <<<"$NETNS"
  HOSTS=$NETNS
  [ -n "$AGENT" ] || AGENT="$REPO/scripts/netns-agent"
  LAUNCH=("$REPO/scripts/netns-cluster.sh" exec "${NET_HOSTS[0]}")
  ENVS=(FI_SRD_IFACE=eth0 FI_SRD_STATS=1 "${ENVS[@]}")
  MPIRUN_ARGS+=(--map-by node --bind-to none)
  for e in "${ENVS[@]}"; do [ "$e" = FI_SRD_SHM=0 ] && SHM_OFF=1; done
fi
[ -n "$HOSTS" ] && MPIRUN_ARGS+=(--host "$HOSTS")
[ -n "$AGENT" ] && MPIRUN_ARGS+=(--mca plm_rsh_agent "$AGENT")
for e in "${ENVS[@]}"; do MPIRUN_ARGS+=(-x "$e"); done
MPIRUN_ARGS+=("${MCAS[@]}")

# Every mpirun runs with SRD_RUN_TAG in its environment, which its orteds (also
# those an agent starts in other namespaces) and ranks inherit.
RUN_TAG="$$.$RANDOM"
# After a timeout: kill any of our test binaries, and any process of that job
# (orteds included), still running on this machine.
kill_leftovers() {
  local exe=$1 p
  for p in /proc/[0-9]*; do
    if [ "$(readlink "$p/exe" 2>/dev/null)" = "$exe" ] ||
       grep -qsxzF "SRD_RUN_TAG=$RUN_TAG" "$p/environ" 2>/dev/null; then
      kill -9 "${p#/proc/}" 2>/dev/null
    fi
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

# --netns: srd prints one line per RDM endpoint at close (FI_SRD_STATS=1,
# src/fi/rdm_ep.rs stats_line): "srd rdm fi_srd://IP:PORT/...: udp tx T rx R
# dgrams, ... retransmits N ...[; shm sent S received V ...]". Sums them per
# host (IP) and requires: at least np endpoints, all on cluster addresses,
# spread over min(np, hosts) hosts, UDP sent and received on every host that
# has an endpoint and, with more ranks than hosts and shm on, shm messages
# sent and received (on some host: not every program makes same-host ranks
# talk to each other). NET_SEEN is the summary.
check_net() {
  local log=$1 np=$2 nh=${#NET_HOSTS[@]} want_shm=0 summary
  [ "$np" -gt "$nh" ] && [ "$SHM_OFF" = 0 ] && want_shm=1
  # (each line is cut at the next "srd rdm": output of other ranks may share it)
  summary=$(sed 's|srd rdm fi_srd://|\n&|g' "$log" |
    grep -a -E -o '^srd rdm fi_srd://[0-9.]+:[0-9]+/[^ ]*: udp tx [0-9]+ rx [0-9]+ dgrams.*' | awk \
    -v np="$np" -v nh="$nh" -v want_shm="$want_shm" '
    {
      ip = $3; sub(/^fi_srd:\/\//, "", ip); sub(/:.*/, "", ip)
      n++; eps[ip]++
      utx[ip] += $6; urx[ip] += $8
      for (i = 1; i < NF; i++) {
        if ($i == "retransmits") rt += $(i + 1)
        if ($i == "shm" && $(i + 1) == "sent") { stx[ip] += $(i + 2); srx[ip] += $(i + 4) }
      }
    }
    END {
      ok = (n >= np)
      nips = 0
      for (ip in eps) {
        nips++
        split(ip, o, ".")
        if (o[1] "." o[2] "." o[3] != "10.77.0" || o[4] < 1 || o[4] > nh) ok = 0
        if (utx[ip] == 0 || urx[ip] == 0) ok = 0
        stx_all += stx[ip]; srx_all += srx[ip]
        per = per sprintf(" %s: %d ep udp %d/%d", ip, eps[ip], utx[ip], urx[ip])
        if (ip in stx) per = per sprintf(" shm %d/%d", stx[ip], srx[ip])
        per = per ";"
      }
      if (nips != (np < nh ? np : nh)) ok = 0
      if (want_shm && (stx_all == 0 || srx_all == 0)) ok = 0
      printf "%d %d eps on %d hosts, retransmits %d;%s", ok, n, nips, rt, per
    }')
  NET_SEEN=${summary#* }
  NET_SEEN=${NET_SEEN%;}
  [ "${summary%% *}" = 1 ]
}

# The most telling line of a failed run's log.
first_error() {
  local p
  for p in 'FAIL:' 'cannot be selected' 'Segmentation|signal [0-9]|core dumped' 'fi_getinfo\(\): No data' '[Ee]rror'; do
    grep -m1 -E "$p" "$1" && return
  done
}

# Interrupted: stop the running job (timeout passes the signal on), then kill
# whatever of it is left, anywhere on this machine.
CHILD=""
on_signal() {
  if [ -n "$CHILD" ]; then kill -TERM "$CHILD" 2>/dev/null; sleep 1; fi
  kill_leftovers /nonexistent
  echo "interrupted" >&2
  exit 130
}
trap on_signal INT TERM HUP

pass=0
fail=0
echo "provider: $PROV${NETNS:+  hosts (network namespaces): $NETNS}  (log dir $LOGDIR)"
for t in "${TESTS[@]}"; do
  IFS='|' read -r name np bin args xmpi desc <<<"$t"
  selected "$name" || continue
  [ -n "$NP" ] && np=$NP
  log="$LOGDIR/$name.log"
  # shellcheck disable=SC2086
  cmd=("${LAUNCH[@]}" mpirun "${MPIRUN_ARGS[@]}" $xmpi -np "$np" "$BIN/$bin" $args $EXTRA_ARGS)
  echo "${cmd[*]}" >"$log"
  start=$EPOCHREALTIME
  # In the background, so a signal to run.sh is handled at once (below).
  SRD_RUN_TAG=$RUN_TAG timeout -k 10 "$TIMEOUT" "${cmd[@]}" </dev/null >>"$log" 2>&1 &
  CHILD=$!
  wait $CHILD
  rc=$?
  CHILD=""
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
  NET_SEEN=""
  if [ -n "$NETNS" ] && [ "$PROV" = srd ] && ! check_net "$log" "$np"; then
    why="${why:+$why; }network check: $NET_SEEN"
  fi
  if [ -z "$why" ]; then
    printf 'PASS %-14s %7.2fs  np=%s prov=%s%s%s\n' "$name" "$secs" "$np" "${PROV_SEEN% }" \
      "${BTL_SEEN:+ btl ofi: $BTL_SEEN}" "${NET_SEEN:+ net: $NET_SEEN}"
    pass=$((pass + 1))
  else
    printf 'FAIL %-14s %7.2fs  np=%s %s\n' "$name" "$secs" "$np" "$why"
    fail=$((fail + 1))
  fi
done
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
