#!/usr/bin/env bash
# srd across "hosts": a 2-namespace cluster (scripts/netns-cluster.sh), then
# fi_pingpong dgram and rdm from h1 (client) to h2 (server, 10.77.0.2), an MPI
# job spread over both namespaces, and rdm again under kernel UDP loss.
#
#   scripts/test-netns.sh [--loss P] [--bench] [--no-mpi]
#
#   --loss P   UDP loss for the lossy checks, percent (default 5)
#   --bench    also measure fi_pingpong rdm MB/s at 64 KiB and 1 MiB for srd,
#              tcp;ofi_rxm and udp;ofi_rxd, lossless and at P% loss of all IP
#              packets (so tcp sees it too), median of 3, as a table
#   --no-mpi   skip the mpirun checks
#
# Prints "PASS name" / "FAIL name" per check and ends with "N passed, M failed";
# exits nonzero on any failure. Logs stay in a temp dir named at the end.
# Replaces a cluster left up by netns-cluster.sh, and always takes it down.
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
CLUSTER=$REPO/scripts/netns-cluster.sh
AGENT=$REPO/scripts/netns-agent

LOSS=5
BENCH=0
MPI=1
while [ $# -gt 0 ]; do
    case $1 in
        --loss) LOSS=$2; shift 2 ;;
        --bench) BENCH=1; shift ;;
        --no-mpi) MPI=0; shift ;;
        *) sed -n '6,13s/^# \{0,1\}//p' "$0"; exit 2 ;;
    esac
done

passed=0
failed=0
failures=()
LOG=$(mktemp -d /tmp/srd-netns.XXXXXX)
SERVER_PID=""

record() { # name status
    if [ "$2" -eq 0 ]; then
        passed=$((passed + 1)); echo "PASS $1"
    else
        failed=$((failed + 1)); failures+=("$1"); echo "FAIL $1"
    fi
}

cleanup() {
    if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null; wait "$SERVER_PID" 2>/dev/null; fi
    "$CLUSTER" down >/dev/null 2>&1
}
trap cleanup EXIT
trap 'exit 130' INT TERM

finish() {
    if ((failed)); then echo "failures: ${failures[*]}"; fi
    echo "logs in $LOG"
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ]
    exit
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

echo "== cluster: 2 hosts"
"$CLUSTER" up 2 >"$LOG/cluster.log" 2>&1
record "netns-cluster up 2" $?
[ "$failed" -eq 0 ] || finish

# fi_pingpong server in h2, client in h1. Writes $LOG/<tag>.{server,client}.
# Returns nonzero unless both exit 0 within the time limit.
pp() { # tag seconds fi_pingpong-args...
    local tag=$1 secs=$2 rc_s rc_c t
    shift 2
    ip netns exec h2 timeout "$secs" fi_pingpong "$@" >"$LOG/$tag.server" 2>&1 &
    SERVER_PID=$!
    for t in $(seq 1 50); do # until its control port listens (bounded)
        ip netns exec h2 ss -Hltn 'sport = :47592' 2>/dev/null | grep -q . && break
        sleep 0.1
    done
    ip netns exec h1 timeout "$secs" fi_pingpong "$@" 10.77.0.2 >"$LOG/$tag.client" 2>&1
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

echo "== fi_info -p srd in h1"
ip netns exec h1 timeout 10 fi_info -p srd >"$LOG/fi_info" 2>&1
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

if [ "$MPI" = 1 ]; then
    echo "== mpirun across namespaces (mpirun in h1, agent scripts/netns-agent)"
    # FI_SRD_IFACE=eth0: srd offers eth0 and lo as two NICs, and Open MPI 4.1
    # spreads ranks over "equidistant NICs", so a rank could take lo (127.0.0.1).
    MPIRUN=(timeout 120 "$CLUSTER" exec h1 mpirun --allow-run-as-root --oversubscribe
            --mca plm_rsh_agent "$AGENT" --host h1,h2 --map-by node -np 2)
    "${MPIRUN[@]}" sh -c 'echo "rank $OMPI_COMM_WORLD_RANK $(hostname) $(ip netns identify)"' \
        >"$LOG/mpi-where" 2>&1
    grep -qx "rank 0 h1 h1" "$LOG/mpi-where" && grep -qx "rank 1 h2 h2" "$LOG/mpi-where"
    record "mpirun -np 2 --host h1,h2: rank 0 in netns h1, rank 1 in netns h2" $?
    if make -s -C mpi-tests >"$LOG/mpi-build.log" 2>&1; then
        "${MPIRUN[@]}" --mca pml cm --mca mtl ofi --mca mtl_ofi_verbose 1 \
            -x FI_PROVIDER=srd -x FI_PROVIDER_PATH="$FI_PROVIDER_PATH" -x FI_SRD_IFACE=eth0 \
            mpi-tests/bin/pingpong -m 1048576 >"$LOG/mpi-pingpong" 2>&1
        rc=$?
        [ "$rc" -eq 0 ] && [ "$(grep -c 'mtl:ofi:prov: srd' "$LOG/mpi-pingpong")" -eq 2 ]
        record "mpi-tests pingpong (0 B..1 MiB) over srd, h1<->h2" $?
    else
        record "make -C mpi-tests" 1
    fi
fi

echo "== UDP loss $LOSS%"
"$CLUSTER" loss "$LOSS" >/dev/null
record "netns-cluster loss $LOSS" $?
pp rdm-all-loss 120 -p srd -e rdm -S all -c
record "fi_pingpong -p srd -e rdm -S all -c at $LOSS% loss: exit 0" $?
sizes_ok rdm-all-loss "$ALL_SIZES"
record "fi_pingpong -p srd -e rdm -S all -c at $LOSS% loss: 1 B..4 MiB all acked" $?
pp rdm-8m-loss 120 -p srd -e rdm -S 8388608 -I 10 -c && sizes_ok rdm-8m-loss 8m
record "fi_pingpong -p srd -e rdm -S 8m -c at $LOSS% loss: exit 0, acked" $?
for h in h1 h2; do
    echo "$h: $(ip netns exec $h nft list table inet srdloss 2>/dev/null | grep -o 'packets [0-9]*') UDP datagrams dropped" \
        >>"$LOG/drops"
done

if [ "$BENCH" = 1 ]; then
    # Loss on all IP traffic here, so the tcp provider sees it too (the timed
    # loop of fi_pingpong excludes its TCP control exchanges). Median of 3.
    echo "== bench: fi_pingpong rdm MB/s (client), lossless vs $LOSS% loss on all IP, median of 3"
    declare -A R
    for loss in 0 "$LOSS"; do
        "$CLUSTER" loss "$loss" --proto all >/dev/null
        for prov in srd tcp udp; do
            for sz in 65536 1048576; do
                iters=$((sz == 65536 ? 300 : 30))
                label=$([ "$sz" = 65536 ] && echo 64k || echo 1m)
                vals=()
                for rep in 1 2 3; do
                    tag="bench-$prov-$sz-$loss-$rep"
                    pp "$tag" 120 -p "$prov" -e rdm -S "$sz" -I "$iters"
                    v=$(mbps "$tag" "$label"); vals+=("${v:-0}")
                done
                R[$prov-$sz-$loss]=$(printf '%s\n' "${vals[@]}" | sort -g | sed -n 2p)
                echo "$prov $sz loss=$loss: ${vals[*]}" >>"$LOG/bench-raw"
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
            for loss in 0 "$LOSS"; do
                awk -v s="$sz" -v l="$loss" -v a="${R[srd-$sz-$loss]}" -v t="${R[tcp-$sz-$loss]}" -v u="${R[udp-$sz-$loss]}" \
                    'BEGIN { if (a > 0 && t > 0 && u > 0) printf "%7s B, loss %s%%: srd/tcp %.2fx, srd/udp %.2fx\n", s, l, a/t, a/u }'
            done
        done
    } | tee "$LOG/bench"
fi

"$CLUSTER" down >/dev/null 2>&1
ip netns list | grep -qE '^(h1|h2|srdbr)( |$)'
record "netns-cluster down removes h1, h2, srdbr" $((! $?))
finish
