#!/usr/bin/env bash
# Installs the Debian packages srd-fabric builds and tests against.
# Idempotent: does nothing when everything is present.
set -euo pipefail

PKGS=(libfabric-dev libfabric-bin openmpi-bin libopenmpi-dev libhwloc-dev hwloc
      libudev-dev pkg-config nftables iproute2 gcc make man-db gdb python3-venv python3-dev)

missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
    echo "install-deps: installing ${missing[*]}"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
    echo "install-deps: cargo not found; install a Rust toolchain (1.85 or newer) first" >&2
    exit 1
fi
echo "install-deps: ok"
