#!/usr/bin/env bash
# The demo: srd against what an MPI user would run instead, on one host and
# between two hosts, in one run.
#
#   scripts/run-demo.sh [--no-build] [--no-install] [--one-host] [--out DIR]
#
# Builds the provider and installs it where libfabric finds it
# (scripts/install.sh; without root FI_PROVIDER_PATH points at the build),
# then measures MPI one-way latency and bandwidth (benches/mpi/latbw.c, 2
# ranks, 8 B to 4 MiB) and prints two tables with ratios and a verdict each:
#   one host   srd (pml cm + mtl ofi: shared-memory rings) vs vader (Open
#              MPI's default on one host: pml ob1, btl vader) vs tcp
#              (tcp;ofi_rxm over loopback, same pml cm + mtl ofi path)
#   two hosts  two network namespaces joined by veth (scripts/netns-cluster.sh,
#              made here and always removed, also on error or Ctrl-C), one
#              rank each: srd vs tcp (tcp;ofi_rxm) vs udp;ofi_rxd; needs root
#              (without it only the one-host table is printed)
# Writes DIR/demo.txt (the tables), DIR/demo.png (latency and bandwidth
# against size, log axes; gnuplot, installed from Debian if missing) and the
# raw output of every run in DIR/runs/. A reference run that fails or times
# out leaves "-" at the sizes it did not reach; it never stops the demo.
#
#   --no-build    use the existing release build: no install-deps.sh, no cargo build
#   --no-install  use the provider from the build (FI_PROVIDER_PATH), do not
#                 install it for the system libfabric
#   --one-host    skip the two-host table
#   --out DIR     output folder (default target/demo)
# Environment: MAX (largest size, default 4194304), ITERS (latbw -i: round
# trips at small sizes, default 200), SRD_NETNS_PREFIX (namespace names,
# default d<pid>).
set -euo pipefail
CALLER=$PWD   # paths are printed relative to it when below it
cd "$(dirname "$0")/.."
ROOT=$PWD
START=$SECONDS

BUILD=1 INSTALL=1 NETNS=1 OUT=target/demo
while [ $# -gt 0 ]; do
    case $1 in
        --no-build) BUILD=0 ;;
        --no-install) INSTALL=0 ;;
        --one-host) NETNS=0 ;;
        --out) OUT=${2:?--out needs a folder}; shift ;;
        -h|--help) sed -n '2,31s/^# \{0,1\}//p' "$0"; exit 0 ;;
        *) echo "run-demo: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
MAX=${MAX:-4194304}
ITERS=${ITERS:-200}
SLICES=5         # latbw -k: the best of 5 timed slices, so a slice in which a
                 # rank lost its core to another job does not decide the value
RXD_MAX=262144   # udp;ofi_rxd crashes or hangs at larger sizes here
# 8 B, then powers of 4 from 64 B: every protocol boundary of srd is crossed.
SIZES=$(printf '%s\n' 8 64 256 1024 4096 16384 65536 262144 1048576 4194304 |
    awk -v m="$MAX" '$1 <= m + 0' | paste -sd, -)
[ -n "$SIZES" ] || { echo "run-demo: MAX=$MAX is below the smallest size (8)" >&2; exit 2; }
mkdir -p "$OUT/runs"
OUT=$(cd "$OUT" && pwd)
rm -f "$OUT"/runs/* "$OUT/demo.txt" "$OUT/demo.png"

TTY=0
[ -t 1 ] && TTY=1
SUDO=()
[ "$(id -u)" -eq 0 ] || SUDO=(sudo -n)

# ---- build and install ------------------------------------------------------
if [ $BUILD = 1 ]; then
    scripts/install-deps.sh
    echo "== building srd-fabric (release)"
    cargo build --release --quiet
fi
[ -e target/release/libfabric/libsrd-fi.so ] || { echo "run-demo: no build in target/release (run without --no-build)" >&2; exit 1; }
if [ $INSTALL = 1 ] && [ "$(id -u)" -eq 0 ] && scripts/install.sh | sed 's/^/   /'; then
    unset FI_PROVIDER_PATH
    echo "== provider installed for the system libfabric (scripts/install.sh --uninstall removes it)"
else
    export FI_PROVIDER_PATH="$ROOT/target/release/libfabric"
    echo "== provider used from the build: FI_PROVIDER_PATH=$FI_PROVIDER_PATH"
fi

# The report needs python3, the plot gnuplot: Debian packages, installed if missing.
need=()
command -v python3 >/dev/null || need+=(python3)
command -v gnuplot >/dev/null || need+=(gnuplot-nox)
if ((${#need[@]})); then
    echo "== installing ${need[*]} (for the tables and the plot)"
    apt_install() {
        DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq -o DPkg::Lock::Timeout=120 \
            --no-install-recommends "${need[@]}" >/dev/null 2>&1
    }
    apt_install || { "${SUDO[@]}" apt-get update -qq >/dev/null 2>&1 && apt_install; } ||
        echo "   could not install ${need[*]}: $(command -v python3 >/dev/null && echo "no plot" || echo "no tables")"
fi
command -v python3 >/dev/null || { echo "run-demo: python3 is needed for the tables" >&2; exit 1; }

mpicc -O2 -o "$OUT/latbw" benches/mpi/latbw.c

# ---- namespaces and cleanup -------------------------------------------------
export SRD_NETNS_PREFIX=${SRD_NETNS_PREFIX:-d$$}
NH1=${SRD_NETNS_PREFIX}h1 NH2=${SRD_NETNS_PREFIX}h2
CLUSTER=$ROOT/scripts/netns-cluster.sh
CLUSTER_UP=0 JOB=""
# Every mpirun runs with SRD_DEMO_TAG in its environment, which its orteds (also
# those netns-agent starts in the other namespace) and ranks inherit: after
# a run, anything still carrying it is a leftover of ours, killed by pid.
DEMO_TAG="$$.$RANDOM"
reap() {
    local d pids=()
    for d in /proc/[0-9]*; do
        [ "${d#/proc/}" = $$ ] && continue
        grep -qsxzF "SRD_DEMO_TAG=$DEMO_TAG" "$d/environ" 2>/dev/null && pids+=("${d#/proc/}")
    done
    ((${#pids[@]} == 0)) || kill -9 "${pids[@]}" 2>/dev/null || true
}
cluster_down() {
    if [ $CLUSTER_UP = 1 ]; then
        CLUSTER_UP=0
        "$CLUSTER" down >/dev/null 2>&1 && echo "== namespace cluster $NH1, $NH2 removed"
    fi
    return 0
}
cleanup() {
    set +e   # whatever fails here, the cluster still goes
    if [ -n "$JOB" ]; then
        kill -TERM "$JOB" 2>/dev/null
        sleep 1
        reap
        wait "$JOB" 2>/dev/null
        JOB=""
    fi
    reap
    cluster_down
}
trap cleanup EXIT
trap 'if [ $TTY = 1 ]; then printf "\r\033[K"; fi; echo "run-demo: interrupted"; exit 130' INT TERM HUP

# ---- one measurement --------------------------------------------------------
human() { # bytes -> "8 B", "64 KiB", "4 MiB"
    local s=$1
    if ((s >= 1048576 && s % 1048576 == 0)); then echo "$((s / 1048576)) MiB"
    elif ((s >= 1024 && s % 1024 == 0)); then echo "$((s / 1024)) KiB"
    else echo "$s B"; fi
}
status() { # one progress line: in place on a terminal, else a line of its own
    if [ $TTY = 1 ]; then printf '\r\033[K%s' "$1"; else echo "$1"; fi
}

# measure TABLE PATH PROVIDER-EXPECTED TIMEOUT SIZES PREFIX... -- MPIRUN-ARGS...
# Runs latbw, shows each finished size, keeps what it printed in
# $OUT/runs/TABLE-PATH.txt (lat/bw lines: read by scripts/demo-report.py)
# and one status word in .status.
measure() {
    local table=$1 path=$2 want=$3 tmo=$4 sizes=$5 pre=()
    shift 5
    while [ "$1" != -- ]; do pre+=("$1"); shift; done
    shift
    local base=$OUT/runs/$table-$path t0=$SECONDS n=0 total rc
    total=$(tr , '\n' <<<"$sizes" | wc -l)
    : >"$base.txt"
    SRD_DEMO_TAG=$DEMO_TAG timeout -k 5 "$tmo" "${pre[@]}" \
        mpirun --allow-run-as-root --oversubscribe -np 2 --mca mtl_ofi_verbose 1 "$@" \
        ${FI_PROVIDER_PATH:+-x FI_PROVIDER_PATH} "$OUT/latbw" -s "$sizes" -i "$ITERS" -k "$SLICES" \
        >"$base.txt" 2>"$base.err" </dev/null &
    JOB=$!
    local lat="" kind size val
    [ $TTY = 0 ] || status "   $(printf '%-6s' "$path") starting ..."
    while :; do
        local alive=0
        kill -0 "$JOB" 2>/dev/null && alive=1
        while read -r kind size val; do
            case $kind in
                lat) lat=$val ;;
                bw)
                    n=$((n + 1))
                    status "$(printf '   %-6s [%2d/%d] %7s  latency %9s us  bandwidth %9s MB/s' \
                        "$path" "$n" "$total" "$(human "$size")" "$lat" "$val")"
                    ;;
            esac
        done < <(grep -E '^(lat|bw) ' "$base.txt" | tail -n +$((2 * n + 1)))
        [ $alive = 1 ] || break
        sleep 0.2
    done
    rc=0
    wait "$JOB" || rc=$?
    JOB=""
    reap
    local used st=ok
    used=$(grep -o 'mtl:ofi:prov: [^ ]*' "$base.err" | awk '{print $2}' | sort -u | paste -sd/ - || true)
    [ "$want" = vader ] && used=vader
    if [ -n "$used" ] && [ "$used" != "$want" ]; then
        st="Open MPI used $used, not $want: not counted"
        : >"$base.txt"
    elif [ $rc = 124 ] || [ $rc = 137 ]; then st="timed out after ${tmo} s"
    elif [ $rc != 0 ]; then st="failed (exit $rc)"
    elif [ -z "$used" ]; then
        st="Open MPI named no ofi provider: not counted"
        : >"$base.txt"
    fi
    [ $n = "$total" ] || st="$st, $n of $total sizes"
    echo "$st" >"$base.status"
    local note=""
    [ "$st" = ok ] || note="  ($st; log $base.err)"
    status "$(printf '   %-6s %d sizes in %d s over %s%s' "$path" "$n" $((SECONDS - t0)) "$want" "$note")"
    [ $TTY = 1 ] && echo
    return 0
}

OFI=(--mca pml cm --mca mtl ofi)
REF=(--mca mtl_ofi_provider_exclude none)   # Open MPI skips tcp and udp by default

echo "== MPI one-way latency and bandwidth (benches/mpi/latbw.c -i $ITERS -k $SLICES), 2 ranks," \
    "$(human "${SIZES%%,*}") to $(human "${SIZES##*,}"); load average $(cut -d' ' -f1-3 /proc/loadavg)"
T0=$SECONDS
echo "== one host: 2 ranks on this machine"
measure host srd srd 60 "$SIZES" -- "${OFI[@]}" -x FI_PROVIDER=srd
measure host vader vader 60 "$SIZES" -- --mca pml ob1 --mca btl vader,self
measure host tcp "tcp;ofi_rxm" 60 "$SIZES" -- "${OFI[@]}" "${REF[@]}" -x FI_PROVIDER=tcp

NOTE=""
if [ $NETNS = 0 ]; then
    NOTE="two hosts: not measured (--one-host)"
elif [ "$(id -u)" -ne 0 ]; then
    NOTE="two hosts: not measured: network namespaces need root (run as root for that table)"
elif ! "$CLUSTER" up 2 >"$OUT/runs/cluster.log" 2>&1; then
    NOTE="two hosts: not measured: scripts/netns-cluster.sh up failed ($(tail -n 1 "$OUT/runs/cluster.log"))"
else
    CLUSTER_UP=1
    echo "== two hosts: namespaces $NH1 and $NH2 (10.77.0.1-2 on veth, MTU 1500), one rank each"
    IN_H1=("$CLUSTER" exec "$NH1")
    HOSTS=(--mca plm_rsh_agent "$ROOT/scripts/netns-agent" --host "$NH1,$NH2" --map-by node --bind-to none)
    RXD_SIZES=$(tr , '\n' <<<"$SIZES" | awk -v m=$RXD_MAX '$1 <= m' | paste -sd, -)
    measure net srd srd 60 "$SIZES" "${IN_H1[@]}" -- "${HOSTS[@]}" "${OFI[@]}" \
        -x FI_PROVIDER=srd -x FI_SRD_IFACE=eth0
    measure net tcp "tcp;ofi_rxm" 60 "$SIZES" "${IN_H1[@]}" -- "${HOSTS[@]}" "${OFI[@]}" "${REF[@]}" \
        -x FI_PROVIDER=tcp -x FI_TCP_IFACE=eth0
    measure net rxd "udp;ofi_rxd" 40 "$RXD_SIZES" "${IN_H1[@]}" -- "${HOSTS[@]}" "${OFI[@]}" "${REF[@]}" \
        -x "FI_PROVIDER=udp;ofi_rxd" -x FI_UDP_IFACE=eth0
    cluster_down
fi
[ -z "$NOTE" ] || echo "== $NOTE"
MEASURED=$((SECONDS - T0))

python3 scripts/demo-report.py --out "$OUT" --sizes "$SIZES" --rxd-max "$RXD_MAX" --slices "$SLICES" \
    --note "$NOTE" --load "$(cut -d' ' -f1-3 /proc/loadavg)" --from "$CALLER"
echo "demo took $((SECONDS - START)) s ($MEASURED s measuring); load average now $(cut -d' ' -f1-3 /proc/loadavg)"
