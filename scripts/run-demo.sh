#!/usr/bin/env bash
# The main job: build the provider, make it findable by libfabric, and show
# what it offers.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
echo "== building (release)"
cargo build --release --quiet
export FI_PROVIDER_PATH="$PWD/target/release/libfabric"
echo "== provider installed for libfabric at FI_PROVIDER_PATH=$FI_PROVIDER_PATH"
echo "== fi_info -p srd"
fi_info -p srd
echo "== fi_info -p srd -v (first entry)"
fi_info -p srd -v | awk 'NR>1 && /^fi_info:/ {exit} {print}'
