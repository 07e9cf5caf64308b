#!/usr/bin/env bash
# The main job: build the provider, install it where libfabric finds it
# (scripts/install.sh: libfabric's provider directory, so no FI_PROVIDER_PATH
# is needed; without root, FI_PROVIDER_PATH points at the build), then run a
# 2-rank MPI ping-pong and bandwidth test over srd (Open MPI pml cm + mtl ofi)
# and, in the same run, over the tcp provider through the same Open MPI path,
# and print both side by side.
set -euo pipefail
cd "$(dirname "$0")/.."

MAX=${MAX:-4194304}
scripts/install-deps.sh
echo "== building srd-fabric (release)"
cargo build --release --quiet
if [ "$(id -u)" -eq 0 ] && scripts/install.sh | sed 's/^/   /'; then
    unset FI_PROVIDER_PATH
    echo "== provider installed for the system libfabric (scripts/install.sh --uninstall removes it)"
else
    export FI_PROVIDER_PATH="$PWD/target/release/libfabric"
    echo "== provider used from the build: FI_PROVIDER_PATH=$FI_PROVIDER_PATH"
fi
fi_info -p srd | grep -E "provider|domain|type" | paste - - - | sort -u | sed 's/^/   /'

out=target/demo
mkdir -p "$out"
mpicc -O2 -o "$out/latbw" benches/mpi/latbw.c

MPIRUN=(mpirun --allow-run-as-root --oversubscribe --mca pml cm --mca mtl ofi -np 2)
run() { # provider label -> $out/<label>.txt
    local prov=$1 label=$2 extra=()
    [ "$prov" = srd ] || extra=(--mca mtl_ofi_provider_exclude none)
    echo "== running MPI latency/bandwidth over $label (sizes up to $MAX B)"
    timeout 600 "${MPIRUN[@]}" "${extra[@]}" --mca mtl_ofi_verbose 1 -x FI_PROVIDER="$prov" ${FI_PROVIDER_PATH:+-x FI_PROVIDER_PATH} \
        "$out/latbw" -m "$MAX" 2>"$out/$label.err" | tee "$out/$label.txt" | while read -r kind size val; do
        printf '\r   %-4s %9s B  %10s' "$kind" "$size" "$val"
    done
    printf '\r%60s\r' ""
    grep -o "mtl:ofi:prov: [^ ]*" "$out/$label.err" | sort -u | sed 's/^/   Open MPI used /'
}
run srd srd
run tcp tcp

echo
echo "One-way latency (us) and bandwidth (MB/s, window of 64), 2 ranks on this host"
printf '%10s | %10s %10s %7s | %10s %10s %7s\n' size "srd lat" "tcp lat" ratio "srd bw" "tcp bw" ratio
awk '
    FNR == NR { v[$1 " " $2] = $3; next }
    { t[$1 " " $2] = $3; if (!($2 in seen)) { seen[$2] = 1; order[n++] = $2 } }
    END {
        for (i = 0; i < n; i++) {
            s = order[i]; ls = v["lat " s]; lt = t["lat " s]; bs = v["bw " s]; bt = t["bw " s]
            printf "%10s | %10s %10s %7s | %10s %10s %7s\n", s, ls, lt,
                (lt > 0 ? sprintf("%.2f", ls / lt) : "-"), (bs == "" ? "-" : bs), (bt == "" ? "-" : bt),
                (bt > 0 ? sprintf("%.2f", bs / bt) : "-")
        }
    }' "$out/srd.txt" "$out/tcp.txt"
echo "(latency ratio srd/tcp: lower is better; bandwidth ratio srd/tcp: higher is better)"
