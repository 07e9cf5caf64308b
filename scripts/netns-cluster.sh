#!/usr/bin/env bash
# A cluster of network namespaces on this machine, for tests across "hosts".
#
#   netns-cluster.sh up N [--loss P] [--proto udp|all]
#                                      hosts h1..hN, 10.77.0.1..N/24 on eth0 (MTU 1500)
#   netns-cluster.sh loss P [--proto udp|all|tcp:LO-HI]
#                                      drop P% of outgoing UDP (or all IP, or TCP
#                                      to or from ports LO-HI) packets on every
#                                      host's eth0 (0 = none)
#   netns-cluster.sh status            what exists now
#   netns-cluster.sh down              remove everything `up` made (idempotent)
#   netns-cluster.sh exec HOST CMD...  run CMD in HOST (network + hostname HOST)
#
# Each host's eth0 is one end of a veth pair whose other end is a port of a
# bridge living in its own namespace (srdbr), so the root namespace gets no
# link, no address and no route: 10.77.0.0/24 exists only inside the cluster.
# Loss is an nftables rule in each host's output chain that matches UDP only,
# so TCP control connections (mpirun, fi_pingpong's OOB) stay whole; with
# --proto all it drops TCP too (to compare with the tcp provider); with
# --proto tcp:LO-HI only TCP segments whose source or destination port is in
# LO-HI (the tcp provider's data connections when FI_TCP_PORT_LOW_RANGE /
# FI_TCP_PORT_HIGH_RANGE confine its listening ports there), so mpirun's own
# connections stay whole while tcp's data sees the loss.
# /etc/netns/hK/hosts (bind-mounted by `ip netns exec`) resolves h1..hN.
#
# SRD_NETNS_PREFIX=P (letters, digits, '-'; at most 8) names everything with P
# in front: hosts Ph1..PhN (namespace = host name = Open MPI node name), the
# bridge namespace Psrdbr, the state in /run/srd-netns-cluster-P. Clusters with
# different prefixes coexist (the subnet exists only inside each cluster).
set -Eeuo pipefail

PFX=${SRD_NETNS_PREFIX:-}
[[ "$PFX" =~ ^[A-Za-z0-9-]{0,8}$ ]] || { echo "netns-cluster: SRD_NETNS_PREFIX must be 0-8 of [A-Za-z0-9-], got '$PFX'" >&2; exit 1; }
BRNS=${PFX}srdbr              # namespace holding the bridge
BR=br0
SUBNET=10.77.0
STATE=/run/srd-netns-cluster${PFX:+-$PFX}  # hosts we created, one per line
NFT_TABLE=srdloss
MTU=1500

die() { echo "netns-cluster: $*" >&2; exit 1; }

hosts() { [ -f "$STATE/hosts" ] && cat "$STATE/hosts" || true; }

ns_exists() { ip netns list | awk '{print $1}' | grep -qx "$1"; }

set_loss() { # host percent proto
    local h=$1 p=$2 match="meta l4proto udp " rules
    [ "$3" = all ] && match=""
    ip netns exec "$h" nft delete table inet "$NFT_TABLE" 2>/dev/null || true
    [ "$p" -eq 0 ] && return 0
    rules="oifname \"eth0\" ${match}numgen random mod 100 < $p counter drop"
    if [ "${3#tcp:}" != "$3" ]; then
        # One draw per segment: a segment between two ports of the range
        # matches the first rule only.
        local r=${3#tcp:}
        rules="oifname \"eth0\" tcp sport $r numgen random mod 100 < $p counter drop
        oifname \"eth0\" tcp dport $r tcp sport != $r numgen random mod 100 < $p counter drop"
    fi
    ip netns exec "$h" nft -f - <<EOF
table inet $NFT_TABLE {
    chain output {
        type filter hook output priority 0; policy accept;
        $rules
    }
}
EOF
}

check_proto() {
    [ "$1" = udp ] || [ "$1" = all ] || [[ "$1" =~ ^tcp:[0-9]+-[0-9]+$ ]] ||
        die "--proto must be udp, all or tcp:LO-HI, got '$1'"
}

check_percent() {
    [[ "$1" =~ ^[0-9]+$ ]] && [ "$1" -le 100 ] || die "loss must be an integer 0..100, got '$1'"
}

cmd_down() {
    local h
    for h in $(hosts); do
        ns_exists "$h" && ip netns delete "$h"   # takes eth0, nft tables with it
        rm -rf "/etc/netns/$h"
    done
    ns_exists "$BRNS" && ip netns delete "$BRNS" # takes the bridge and the veth ends
    rm -rf "$STATE"
    rmdir /etc/netns 2>/dev/null || true   # only if empty
    return 0
}

cmd_up() {
    local n=${1:-} loss=0 proto=udp
    [[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] && [ "$n" -le 250 ] || die "usage: up N [--loss P] (1 <= N <= 250)"
    shift
    while [ $# -gt 0 ]; do
        case $1 in
            --loss) [ $# -ge 2 ] || die "--loss needs a value"; loss=$2; shift 2 ;;
            --loss=*) loss=${1#--loss=}; shift ;;
            --proto) [ $# -ge 2 ] || die "--proto needs a value"; proto=$2; shift 2 ;;
            *) die "unknown option $1" ;;
        esac
    done
    check_percent "$loss"
    check_proto "$proto"

    [ -f "$STATE/hosts" ] && cmd_down           # replace our own previous cluster
    local i
    ns_exists "$BRNS" && die "namespace $BRNS exists but is not ours; not touching it"
    for i in $(seq 1 "$n"); do
        ns_exists "${PFX}h$i" && die "namespace ${PFX}h$i exists but is not ours; not touching it"
    done

    mkdir -p "$STATE"
    : >"$STATE/hosts"
    trap 'echo "netns-cluster: up failed, cleaning up" >&2; cmd_down' ERR
    trap 'echo "netns-cluster: up interrupted, cleaning up" >&2; cmd_down; exit 130' INT TERM HUP

    ip netns add "$BRNS"
    ip -n "$BRNS" link set lo up
    ip -n "$BRNS" link add "$BR" type bridge
    ip -n "$BRNS" link set "$BR" mtu "$MTU" up

    local hostsfile
    hostsfile=$(printf '127.0.0.1\tlocalhost\n'; for i in $(seq 1 "$n"); do printf '%s.%d\t%sh%d\n' "$SUBNET" "$i" "$PFX" "$i"; done)
    for i in $(seq 1 "$n"); do
        local h="${PFX}h$i"
        ip netns add "$h"
        echo "$h" >>"$STATE/hosts"
        mkdir -p "/etc/netns/$h"
        echo "$hostsfile" >"/etc/netns/$h/hosts"
        ip -n "$h" link set lo up
        # Both ends are born in their namespaces: nothing appears in the root one.
        ip link add eth0 netns "$h" mtu "$MTU" type veth peer name "v$h" netns "$BRNS" mtu "$MTU"
        ip -n "$BRNS" link set "v$h" master "$BR" up
        ip -n "$h" addr add "$SUBNET.$i/24" dev eth0
        ip -n "$h" link set eth0 up
        set_loss "$h" "$loss" "$proto"
    done
    echo "$loss% ($proto)" >"$STATE/loss"
    trap - ERR INT TERM HUP
    # STP is off on the bridge, so its ports forward at once: no wait needed.
    echo "cluster up: $n hosts (${PFX}h1..${PFX}h$n = $SUBNET.1..$n/24), loss $loss% ($proto)"
}

cmd_loss() {
    local p=${1:-} proto=udp
    [ -n "$p" ] || die "usage: loss P [--proto udp|all|tcp:LO-HI]"
    shift
    if [ $# -gt 0 ]; then
        [ "$1" = --proto ] && [ $# -eq 2 ] || die "usage: loss P [--proto udp|all|tcp:LO-HI]"
        proto=$2
    fi
    check_percent "$p"
    check_proto "$proto"
    [ -f "$STATE/hosts" ] || die "no cluster is up"
    local h
    for h in $(hosts); do set_loss "$h" "$p" "$proto"; done
    echo "$p% ($proto)" >"$STATE/loss"
    echo "loss now $p% ($proto) on every host's eth0 output"
}

cmd_status() {
    if [ ! -f "$STATE/hosts" ]; then echo "no cluster"; return 0; fi
    echo "hosts: $(hosts | tr '\n' ' ')  loss: $(cat "$STATE/loss" 2>/dev/null || echo ?)"
    local h
    for h in $(hosts); do
        if ns_exists "$h"; then
            printf '%-4s %s  dropped: %s\n' "$h" "$(ip -n "$h" -br -4 addr show eth0 2>/dev/null | tr -s ' ')" \
                "$(ip netns exec "$h" nft list table inet "$NFT_TABLE" 2>/dev/null | grep -o 'packets [0-9]*' || echo none)"
        else
            printf '%-4s missing\n' "$h"
        fi
    done
}

cmd_exec() {
    local h=${1:-}
    [ -n "$h" ] && [ $# -ge 2 ] || die "usage: exec HOST CMD..."
    shift
    # A UTS namespace of its own so `hostname` (and Open MPI's node name) is HOST.
    exec ip netns exec "$h" unshare --uts sh -c 'hostname "$0" && exec "$@"' "$h" "$@"
}

[ "$(id -u)" -eq 0 ] || die "must run as root"
case ${1:-} in
    up) shift; cmd_up "$@" ;;
    down) cmd_down ;;
    loss) shift; cmd_loss "$@" ;;
    status) cmd_status ;;
    exec) shift; cmd_exec "$@" ;;
    *) sed -n '4,12s/^# \{0,1\}//p' "$0"; exit 2 ;;
esac
