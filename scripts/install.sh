#!/usr/bin/env bash
# Installs the srd provider where the system's libfabric finds it without
# FI_PROVIDER_PATH, its manual page fi_srd(7), and the srd-stat tool if built.
#
#   scripts/install.sh [PREFIX]              build (release) if needed, then install
#   scripts/install.sh --uninstall [PREFIX]  remove exactly what was installed
#
# PREFIX defaults to /usr. With PREFIX /usr the provider goes into libfabric's
# own provider directory (the default of FI_PROVIDER_PATH that `fi_info -e`
# shows; Debian: /usr/lib/<multiarch>/libfabric). With another PREFIX it goes
# into PREFIX/lib/libfabric and applications need FI_PROVIDER_PATH to reach it.
# Every file and directory created is written to a manifest,
# PREFIX/share/srd-fabric/install-manifest, which --uninstall reads; installing
# again first removes what the previous manifest lists.
set -euo pipefail

uninstall=0
prefix=/usr
for a in "$@"; do
    case "$a" in
        --uninstall) uninstall=1 ;;
        -h | --help) sed -n '2,/^set /{/^#/s/^# \{0,1\}//p}' "$0"; exit 0 ;;
        -*) echo "install.sh: unknown option $a" >&2; exit 2 ;;
        *) prefix=$(realpath -m -- "$a") ;;
    esac
done
cd "$(dirname "$0")/.."
manifest_dir="$prefix/share/srd-fabric"
manifest="$manifest_dir/install-manifest"

# libfabric's built-in provider directory (where it looks when
# FI_PROVIDER_PATH is unset).
libfabric_provdir() {
    local d=""
    if command -v fi_info >/dev/null 2>&1; then
        d=$(env -u FI_PROVIDER_PATH fi_info -e 2>/dev/null | tr -d '\000' |
            sed -n '/^# FI_PROVIDER_PATH:/,/^$/s/.*(default: \([^)]*\)).*/\1/p' | head -n 1)
    fi
    if [ -z "$d" ]; then
        local multiarch
        multiarch=$(gcc -print-multiarch 2>/dev/null || dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || true)
        d=/usr/lib${multiarch:+/$multiarch}/libfabric
    fi
    echo "$d"
}

# Removes what the manifest lists: the files, then the directories the
# install created (deepest first) if they are empty, then the manifest.
remove_installed() {
    [ -f "$manifest" ] || return 0
    local kind path dirs=()
    while read -r kind path; do
        case "$kind" in
            f)
                rm -f -- "$path" && echo "install.sh: removed $path"
                case "$path" in */share/man/*) refresh_man_index "$path" ;; esac
                ;;
            d) dirs+=("$path") ;;
        esac
    done <"$manifest"
    rm -f -- "$manifest"
    if ((${#dirs[@]})); then
        while read -r path; do
            rmdir -- "$path" 2>/dev/null && echo "install.sh: removed $path/"
        done < <(printf '%s\n' "${dirs[@]}" | sort -r)
    fi
    return 0
}

# Updates man-db's index entry for one page (present or removed) when it is
# in a manual tree the system searches; the index lives elsewhere (e.g.
# /var/cache/man), and pages under other trees are left alone so no index
# file appears under PREFIX.
refresh_man_index() { # page
    local tree=$prefix/share/man
    command -v mandb >/dev/null 2>&1 || return 0
    case ":$(manpath -g 2>/dev/null):" in
        *":$tree:"*) mandb -q -f "$1" >/dev/null 2>&1 || true ;;
    esac
}

if ((uninstall)); then
    if [ ! -f "$manifest" ]; then
        echo "install.sh: nothing installed under $prefix (no $manifest)"
        exit 0
    fi
    remove_installed
    echo "install.sh: uninstalled from $prefix"
    exit 0
fi

# Build if needed (cargo does nothing when the library is current).
lib=target/release/libfabric/libsrd-fi.so
if command -v cargo >/dev/null 2>&1; then
    echo "install.sh: cargo build --release"
    cargo build --release --quiet
elif [ ! -f "$lib" ]; then
    echo "install.sh: $lib is not built and cargo is not available" >&2
    exit 1
fi
[ -f "$lib" ] || { echo "install.sh: build left no $lib" >&2; exit 1; }

if [ "$prefix" = /usr ]; then
    provdir=$(libfabric_provdir)
else
    provdir=$prefix/lib/libfabric
fi
mandir=$prefix/share/man/man7
bindir=$prefix/bin

# A previous install is replaced, not added to.
remove_installed

created=()
files=()
make_dir() { # creates a directory and its missing parents, remembering them
    local d=$1 missing=()
    while [ ! -d "$d" ]; do
        missing+=("$d")
        d=$(dirname "$d")
    done
    mkdir -p -- "$1"
    created+=("${missing[@]}")
}

make_dir "$manifest_dir"
: >"$manifest"
record_file() { files+=("$1"); echo "f $1" >>"$manifest"; }

make_dir "$provdir"
install -m 0644 "$lib" "$provdir/libsrd-fi.so"
record_file "$provdir/libsrd-fi.so"

make_dir "$mandir"
# Debian ships manual pages gzip -9n compressed.
gzip -9n -c man/fi_srd.7 >"$mandir/fi_srd.7.gz"
chmod 0644 "$mandir/fi_srd.7.gz"
record_file "$mandir/fi_srd.7.gz"

if [ -f target/release/srd-stat ]; then
    make_dir "$bindir"
    install -m 0755 target/release/srd-stat "$bindir/srd-stat"
    record_file "$bindir/srd-stat"
fi

for d in "${created[@]}"; do echo "d $d" >>"$manifest"; done
refresh_man_index "$mandir/fi_srd.7.gz"

for f in "${files[@]}"; do echo "install.sh: installed $f"; done
if [ "$prefix" != /usr ]; then
    echo "install.sh: set FI_PROVIDER_PATH=$provdir for libfabric to find the provider"
fi
