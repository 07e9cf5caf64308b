#!/usr/bin/env bash
# srd across "hosts" (network namespaces, scripts/netns-cluster.sh):
#  - 2 hosts: fi_info, fi_pingpong dgram and rdm h1 -> h2 (lossless and at
#    P% UDP loss), rank placement, and the MPI suite (mpi-tests/run.sh
#    --netns) with 2 ranks per host (each rank has a same-host peer over shm
#    and two over UDP): every program lossless (pingpong to 4 MiB), pingpong
#    (1 MiB), collectives, stress8, onesided_rdma at P% loss; the same at H%
#    loss with the programs' own rank counts (pingpong to 256 KiB,
#    onesided_rdma 2 ranks);
#  - 4 hosts: every program lossless (pingpong to 16 MiB), collectives and
#    stress8 at P% loss.
# Each MPI program must pass, every rank must have taken srd, and srd's
# per-endpoint counters (FI_SRD_STATS=1) must show UDP datagrams sent and
# received on every host (and, in the 2 x 2 runs, shm messages as well).
#
#   scripts/test-netns.sh [--loss P] [--loss-high H] [--bench] [--no-mpi]
#
#   --loss P       UDP loss for the lossy checks, percent (default 5)
#   --loss-high H  UDP loss for the heavy-loss MPI subset (default 20)
#   --bench        also measure fi_pingpong rdm MB/s at 64 KiB and 1 MiB for srd,
#                  tcp;ofi_rxm and udp;ofi_rxd, lossless and at P% loss of all IP
#                  packets (so tcp sees it too), median of 3, as a table
#   --no-mpi       skip the mpirun checks
#
# Prints "PASS name" / "FAIL name" per check and ends with "N passed, M failed";
# exits nonzero on any failure. Logs stay in a temp dir named at the end.
# Namespaces are named with SRD_NETNS_PREFIX (default t<pid>), so runs do
# not collide; on exit, failure or a signal, every process started here is
# killed and the cluster taken down, and the last check is that nothing of
# it (namespace, /etc/netns entry, state) is left.
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
CLUSTER=$REPO/scripts/netns-cluster.sh
AGENT=$REPO/scripts/netns-agent

LOSS=5
LOSS_HIGH=20
BENCH=0
MPI=1
while [ $# -gt 0 ]; do
    case $1 in
        --loss) LOSS=$2; shift 2 ;;
        --loss-high) LOSS_HIGH=$2; shift 2 ;;
        --bench) BENCH=1; shift ;;
        --no-mpi) MPI=0; shift ;;
        *) sed -n '16,23s/^# \{0,1\}//p' "$0"; exit 2 ;;
    esac
done

export SRD_NETNS_PREFIX=${SRD_NETNS_PREFIX:-t$$}
P=$SRD_NETNS_PREFIX
H1=${P}h1 H2=${P}h2

passed=0
failed=0
failures=()
LOG=$(mktemp -d /tmp/srd-netns.XXXXXX)
START=$SECONDS
# Every process started from here carries this in its environment (mpirun's
# orteds and ranks, also in other namespaces, inherit it): a leftover is
# found by it and killed by pid.
export SRD_NETNS_TAG="$$.$RANDOM"
CHILD=""
SERVER_PID=""

record() { # name status
    if [ "$2" -eq 0 ]; then
        passed=$((passed + 1)); echo "PASS $1"
    else
        failed=$((failed + 1)); failures+=("$1"); echo "FAIL $1"
    fi
}

reap() {
    local d pids=""
    for d in /proc/[0-9]*; do
        [ "${d#/proc/}" = "$$" ] && continue
        grep -qsxzF "SRD_NETNS_TAG=$SRD_NETNS_TAG" "$d/environ" 2>/dev/null && pids="$pids ${d#/proc/}"
    done
    # shellcheck disable=SC2086
    [ -n "$pids" ] && kill -9 $pids 2>/dev/null
    return 0
}

cleanup() {
    trap - INT TERM HUP
    # A child first gets the chance to clean up after itself (run.sh kills
    # its job); then whatever of ours is left goes, then the cluster.
    if [ -n "$CHILD" ]; then kill -TERM "$CHILD" 2>/dev/null; sleep 1; fi
    reap
    "$CLUSTER" down >/dev/null 2>&1
}
trap cleanup EXIT
trap 'echo "interrupted"; exit 130' INT TERM HUP

finish() {
    echo "== cluster checks took $((SECONDS - START)) s"
    if ((failed)); then echo "failures: ${failures[*]}"; fi
    echo "logs in $LOG"
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ]
    exit
}

# Runs a command in the background and waits, so a signal is acted on at once.
bg() {
    "$@" &
    CHILD=$!
    wait "$CHILD"
    local rc=$?
    CHILD=""
    return $rc
}

export FI_PROVIDER_PATH=$REPO/target/release/libfabric
if [ ! -e "$FI_PROVIDER_PATH/libsrd-fi.so" ]; then
    echo "== cargo build --release"
    cargo build --release --quiet >"$LOG/build.log" 2>&1
    record "cargo build --release" $?
    [ -e "$FI_PROVIDER_PATH/libsrd-fi.so" ] || finish
fi
for tool in fi_pingpong fi_info nft ip unshare; do
    command -v "$tool" >/dev/null || { record "tool $tool present (scripts/install-deps.sh)" 1; finish; }
done

up() { # N
    echo "== cluster: $1 hosts (${P}h1..${P}h$1)"
    bg "$CLUSTER" up "$1" >"$LOG/cluster-$1.log" 2>&1
    record "netns-cluster up $1" $?
    [ "$failed" -eq 0 ] || finish
}
loss() { # P
    bg "$CLUSTER" loss "$1" >/dev/null
    record "netns-cluster loss $1" $?
}

# fi_pingpong server in h2, client in h1. Writes $LOG/<tag>.{server,client}.
# Returns nonzero unless both exit 0 within the time limit.
pp() { # tag seconds fi_pingpong-args...
    local tag=$1 secs=$2 rc_s rc_c t
    shift 2
    ip netns exec "$H2" timeout "$secs" fi_pingpong "$@" >"$LOG/$tag.server" 2>&1 &
    SERVER_PID=$!
    for t in $(seq 1 50); do # until its control port listens (bounded)
        ip netns exec "$H2" ss -Hltn 'sport = :47592' 2>/dev/null | grep -q . && break
        sleep 0.1
    done
    bg ip netns exec "$H1" timeout "$secs" fi_pingpong "$@" 10.77.0.2 >"$LOG/$tag.client" 2>&1
    rc_c=$?
    wait "$SERVER_PID"; rc_s=$?
    SERVER_PID=""
    echo "client rc=$rc_c server rc=$rc_s" >>"$LOG/$tag.client"
    [ "$rc_c" -eq 0 ] && [ "$rc_s" -eq 0 ]
}

# Both sides printed a result line for every size in $2, each with every
# message acknowledged ("=N" in #ack), and no line with a lost/extra count.
sizes_ok() { # tag "size size ..."
    local tag=$1 side s
    for side in client server; do
        grep -aqE '^[0-9.]+[kmg]? +[0-9.]+[kmb]? +[-+]' "$LOG/$tag.$side" && return 1
        for s in $2; do
            grep -aqE "^$s +[0-9.]+[kmb]? +=" "$LOG/$tag.$side" || return 1
        done
    done
}

# MB/s column of the client's line for one size.
mbps() { awk -v s="$2" '$1 == s && $3 ~ /^=/ {print $6}' "$LOG/$1.client" 2>/dev/null; }

# The MPI suite across the cluster's first N hosts: one record per program
# ("mpi LABEL NAME"), details in $LOG/mpi-LABEL.log and $LOG/mpi-LABEL/.
MPI_OK=1
mpi() { # label nhosts run.sh-args...
    local label=$1 n=$2 hosts i t0=$SECONDS
    shift 2
    hosts=$(for i in $(seq 1 "$n"); do printf '%sh%d,' "$P" "$i"; done)
    bg "$REPO/mpi-tests/run.sh" --no-build --netns "${hosts%,}" --logdir "$LOG/mpi-$label" "$@" \
        >"$LOG/mpi-$label.log" 2>&1
    while read -r st name _; do
        record "mpi $label $name" "$([ "$st" = PASS ] && echo 0 || echo 1)"
    done < <(grep -E "^(PASS|FAIL) " "$LOG/mpi-$label.log")
    grep -qE "^[0-9]+ passed, 0 failed" "$LOG/mpi-$label.log"
    record "mpi $label: run.sh finished, nothing failed ($((SECONDS - t0)) s)" $?
}

up 2

echo "== fi_info -p srd in $H1"
ip netns exec "$H1" timeout 10 fi_info -p srd >"$LOG/fi_info" 2>&1
doms=$(tr -d '\000' <"$LOG/fi_info" | awk '/domain:/ {print $2}' | uniq | tr '\n' ' ')
[ "$doms" = "eth0 " ]
record "fi_info -p srd in h1: eth0 listed, lo left out while eth0 is up (got: $doms)" $?

ALL_SIZES="1 64 1k 4k 64k 1m 4m"
echo "== lossless"
pp dgram 30 -p srd -e dgram
record "fi_pingpong -p srd -e dgram h1->h2: exit 0" $?
sizes_ok dgram "64 256 1k"
record "fi_pingpong -p srd -e dgram h1->h2: 64 256 1k all acked" $?

pp rdm-all 120 -p srd -e rdm -S all -c
record "fi_pingpong -p srd -e rdm -S all -c h1->h2: exit 0" $?
sizes_ok rdm-all "$ALL_SIZES"
record "fi_pingpong -p srd -e rdm -S all -c h1->h2: 1 B..4 MiB all acked" $?

pp rdm-8m 60 -p srd -e rdm -S 8388608 -I 10 -c && sizes_ok rdm-8m 8m
record "fi_pingpong -p srd -e rdm -S 8m -c h1->h2: exit 0, acked" $?

# The MPI subset run under loss: pingpong (sizes capped: beyond them only
# time is added), collectives, stress8 (many messages, wildcards) and
# onesided_rdma (RMA and atomics over btl ofi).
SUBSET=collectives,stress8
if [ "$MPI" = 1 ]; then
    if ! make -s -C mpi-tests >"$LOG/mpi-build.log" 2>&1; then
        record "make -C mpi-tests" 1
        MPI=0
    fi
fi
if [ "$MPI" = 1 ]; then
    echo "== mpirun across namespaces (mpirun in $H1, agent scripts/netns-agent)"
    bg timeout 120 "$CLUSTER" exec "$H1" mpirun --allow-run-as-root --oversubscribe \
        --mca plm_rsh_agent "$AGENT" --host "$H1,$H2" --map-by node --bind-to none -np 4 \
        sh -c 'echo "rank $OMPI_COMM_WORLD_RANK $(hostname) $(ip netns identify)"' >"$LOG/mpi-where" 2>&1
    st=0
    for r in "0 $H1" "1 $H2" "2 $H1" "3 $H2"; do
        grep -qx "rank ${r% *} ${r#* } ${r#* }" "$LOG/mpi-where" || st=1
    done
    record "mpirun -np 4 --host h1,h2 --map-by node: ranks 0,2 in netns h1, ranks 1,3 in netns h2" $st

    echo "== MPI suite, 2 hosts x 2 ranks, lossless"
    mpi 2x2 2 --np 4 --timeout 240 --skip pingpong
    mpi 2x2-pingpong 2 --np 4 --timeout 240 --only pingpong --args "-m 4194304"
fi

echo "== UDP loss $LOSS%"
loss "$LOSS"
pp rdm-all-loss 120 -p srd -e rdm -S all -c
record "fi_pingpong -p srd -e rdm -S all -c at $LOSS% loss: exit 0" $?
sizes_ok rdm-all-loss "$ALL_SIZES"
record "fi_pingpong -p srd -e rdm -S all -c at $LOSS% loss: 1 B..4 MiB all acked" $?
if [ "$MPI" = 1 ]; then
    echo "== MPI subset, 2 hosts x 2 ranks, $LOSS% loss"
    mpi "2x2-loss$LOSS" 2 --np 4 --timeout 240 --only "$SUBSET,onesided_rdma"
    mpi "2x2-loss$LOSS-pingpong" 2 --np 4 --timeout 240 --only pingpong --args "-m 1048576"

    echo "== MPI subset, 2 hosts, $LOSS_HIGH% loss"
    loss "$LOSS_HIGH"
    mpi "2h-loss$LOSS_HIGH" 2 --timeout 300 --only "$SUBSET"
    mpi "2h-loss$LOSS_HIGH-pingpong" 2 --timeout 300 --only pingpong --args "-m 262144"
    mpi "2h-loss$LOSS_HIGH-onesided" 2 --timeout 300 --only onesided_rdma --np 2
fi
for h in "$H1" "$H2"; do
    echo "$h: $(ip netns exec "$h" nft list table inet srdloss 2>/dev/null | grep -o 'packets [0-9]*') UDP datagrams dropped" \
        >>"$LOG/drops"
done

if [ "$BENCH" = 1 ]; then
    # Loss on all IP traffic here, so the tcp provider sees it too (the timed
    # loop of fi_pingpong excludes its TCP control exchanges). Median of 3.
    echo "== bench: fi_pingpong rdm MB/s (client), lossless vs $LOSS% loss on all IP, median of 3"
    declare -A R
    for l in 0 "$LOSS"; do
        "$CLUSTER" loss "$l" --proto all >/dev/null
        for prov in srd tcp udp; do
            for sz in 65536 1048576; do
                iters=$((sz == 65536 ? 300 : 30))
                label=$([ "$sz" = 65536 ] && echo 64k || echo 1m)
                vals=()
                for rep in 1 2 3; do
                    tag="bench-$prov-$sz-$l-$rep"
                    pp "$tag" 120 -p "$prov" -e rdm -S "$sz" -I "$iters"
                    v=$(mbps "$tag" "$label"); vals+=("${v:-0}")
                done
                R[$prov-$sz-$l]=$(printf '%s\n' "${vals[@]}" | sort -g | sed -n 2p)
                echo "$prov $sz loss=$l: ${vals[*]}" >>"$LOG/bench-raw"
            done
        done
    done
    {
        printf '%-12s %-6s %10s %10s %8s\n' provider size lossless "loss $LOSS%" kept
        for prov in srd tcp udp; do
            name=$prov; [ $prov = tcp ] && name="tcp;ofi_rxm"; [ $prov = udp ] && name="udp;ofi_rxd"
            for sz in 65536 1048576; do
                a=${R[$prov-$sz-0]}; b=${R[$prov-$sz-$LOSS]}
                kept=$(awk -v a="$a" -v b="$b" 'BEGIN { if (a > 0 && b > 0) printf "%.1f%%", 100*b/a; else print "-" }')
                printf '%-12s %-6s %10s %10s %8s\n' "$name" "$([ $sz = 65536 ] && echo 64KiB || echo 1MiB)" "$a" "$b" "$kept"
            done
        done
        for sz in 65536 1048576; do
            for l in 0 "$LOSS"; do
                awk -v s="$sz" -v l="$l" -v a="${R[srd-$sz-$l]}" -v t="${R[tcp-$sz-$l]}" -v u="${R[udp-$sz-$l]}" \
                    'BEGIN { if (a > 0 && t > 0 && u > 0) printf "%7s B, loss %s%%: srd/tcp %.2fx, srd/udp %.2fx\n", s, l, a/t, a/u }'
            done
        done
    } | tee "$LOG/bench"
fi

if [ "$MPI" = 1 ]; then
    up 4
    echo "== MPI suite, 4 hosts, lossless"
    mpi 4h 4 --timeout 300 --skip pingpong
    mpi 4h-pingpong 4 --timeout 300 --only pingpong --args "-m 16777216"
    echo "== MPI subset, 4 hosts, $LOSS% loss"
    loss "$LOSS"
    mpi "4h-loss$LOSS" 4 --timeout 240 --only collectives,stress8
fi

"$CLUSTER" down >/dev/null 2>&1
left=$( { ip netns list | awk '{print $1}' | grep -E "^${P}(h[0-9]+|srdbr)$"
          ls -d "/etc/netns/${P}"h* "/run/srd-netns-cluster-$P" 2>/dev/null; } | tr '\n' ' ')
[ -z "$left" ]
record "netns-cluster down leaves no namespace, /etc/netns entry or state of ${P}* (left: ${left:-none})" $?
finish
