#!/usr/bin/env bash
# Fetches NVIDIA's user-space driver libraries and NVML header from Debian's
# non-free component and unpacks them into a directory of their own, without
# installing anything: the rest of the system (and the test suite) keeps the
# simulated driver. tests/integration/realdrv_lookups.sh and abi_nvml_h.sh use
# them, and tests/integration/nvidia_smi.sh runs NVIDIA's nvidia-smi on the
# simulated GPU. Without a GPU the driver loads and answers cuGetProcAddress.
#
#   tools/fetch-nvidia-driver.sh [DEST]
#
# DEST (default $GPUMEM_NVIDIA_DIR, else /var/cache/gpumem/nvidia) receives
#   lib/      libcuda.so.1, libnvidia-ml.so.1 (and their versioned files)
#   include/  nvml.h
#   bin/      nvidia-smi
#   VERSION   the packages unpacked, one "name version suite" a line
# Nothing is done when DEST already holds them; when it holds all but
# nvidia-smi, only nvidia-smi is fetched and added. Packages: libcuda1 and
# libnvidia-ml1, the driver, from $GPUMEM_NVIDIA_SUITE (default bookworm:
# 535; trixie: 550), libnvidia-ml-dev (nvml.h) from
# $GPUMEM_NVIDIA_HEADER_SUITE (default trixie: CUDA 12.4's, bookworm's is
# 11.8's), and nvidia-smi from $GPUMEM_NVIDIA_SMI_SUITE (default trixie:
# 550.163.01, which needs glibc 2.34 and runs on Debian 12; it is run against
# the simulated NVML, never the fetched one). apt reads a sources list of its
# own (the non-free component of those suites) and keeps its lists in a
# temporary directory: the system's apt sources and state are not touched.
set -euo pipefail

dest=${1:-${GPUMEM_NVIDIA_DIR:-/var/cache/gpumem/nvidia}}
suite=${GPUMEM_NVIDIA_SUITE:-bookworm}
header_suite=${GPUMEM_NVIDIA_HEADER_SUITE:-trixie}
smi_suite=${GPUMEM_NVIDIA_SMI_SUITE:-trixie}
mirror=${GPUMEM_DEBIAN_MIRROR:-http://deb.debian.org/debian}
keyring=/usr/share/keyrings/debian-archive-keyring.gpg

case "${1:-}" in
-h | --help) sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
esac

have_driver=0 have_smi=0
if [ -e "$dest/lib/libcuda.so.1" ] && [ -e "$dest/lib/libnvidia-ml.so.1" ] && [ -f "$dest/include/nvml.h" ] &&
    [ -f "$dest/VERSION" ]; then
    have_driver=1
fi
[ -x "$dest/bin/nvidia-smi" ] && have_smi=1
if [ $have_driver = 1 ] && [ $have_smi = 1 ]; then
    echo "fetch-nvidia-driver.sh: already in $dest ($(tr '\n' ' ' <"$dest/VERSION"))"
    exit 0
fi
packages=("nvidia-smi/$smi_suite")
suites=("$smi_suite")
if [ $have_driver = 0 ]; then
    packages+=("libcuda1/$suite" "libnvidia-ml1/$suite" "libnvidia-ml-dev/$header_suite")
    suites+=("$suite" "$header_suite")
fi
for tool in apt-get dpkg-deb; do
    command -v "$tool" >/dev/null || { echo "fetch-nvidia-driver.sh: $tool not found (Debian only)" >&2; exit 1; }
done
[ -f "$keyring" ] || { echo "fetch-nvidia-driver.sh: $keyring not found (debian-archive-keyring)" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/gpumem-nvidia.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/debs" "$work/root"
for s in $(printf '%s\n' "${suites[@]}" | sort -u); do
    echo "deb [signed-by=$keyring] $mirror $s non-free"
done >"$work/sources.list"
: >"$work/status"
apt=(-o "Dir::Etc::sourcelist=$work/sources.list" -o Dir::Etc::sourceparts=-
     -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache" -o "Dir::State::status=$work/status"
     -o Dir::Etc::preferencesparts=- -o APT::Sandbox::User=root)

echo "fetch-nvidia-driver.sh: ${packages[*]} (non-free)"
if ! apt-get "${apt[@]}" -qq update >"$work/update.log" 2>&1; then
    echo "fetch-nvidia-driver.sh: apt-get update failed: $(tail -3 "$work/update.log" | tr '\n' ' ')" >&2
    exit 1
fi
if ! (cd "$work/debs" && apt-get "${apt[@]}" -qq download "${packages[@]}") >"$work/download.log" 2>&1; then
    echo "fetch-nvidia-driver.sh: apt-get download failed: $(tail -3 "$work/download.log" | tr '\n' ' ')" >&2
    exit 1
fi
: >"$work/VERSION"
for deb in "$work"/debs/*.deb; do
    dpkg-deb -x "$deb" "$work/root"
    pkg=$(dpkg-deb -f "$deb" Package)
    from=$suite; [ "$pkg" = libnvidia-ml-dev ] && from=$header_suite; [ "$pkg" = nvidia-smi ] && from=$smi_suite
    echo "$pkg $(dpkg-deb -f "$deb" Version) $from" >>"$work/VERSION"
done

# nvidia-smi: Debian installs it as /usr/lib/nvidia/current/nvidia-smi (the
# alternatives link /usr/bin/nvidia-smi to it).
smi=$(find "$work/root/usr/lib" -type f -name nvidia-smi -path '*nvidia/current/*' | head -1)
if [ -z "$smi" ]; then
    echo "fetch-nvidia-driver.sh: no nvidia-smi in the nvidia-smi package" >&2
    exit 1
fi
if [ $have_driver = 1 ]; then
    # Only nvidia-smi was missing: add it beside what is there.
    rm -rf "$dest/bin.new"
    mkdir -p "$dest/bin.new"
    cp "$smi" "$dest/bin.new/nvidia-smi"
    rm -rf "$dest/bin"
    mv "$dest/bin.new" "$dest/bin"
    grep -v '^nvidia-smi ' "$dest/VERSION" >"$work/VERSION.all" || true
    cat "$work/VERSION" >>"$work/VERSION.all"
    cp "$work/VERSION.all" "$dest/VERSION.new" && mv "$dest/VERSION.new" "$dest/VERSION"
    echo "fetch-nvidia-driver.sh: added $dest/bin/nvidia-smi: $(tr '\n' ' ' <"$work/VERSION")"
    exit 0
fi

# Debian installs the libraries under /usr/lib/<triplet>/nvidia/current/ and
# points the usual names at them with alternatives, which dpkg-deb -x does
# not run: take that directory as it is, and make sure of the sonames.
libdir=$(find "$work/root/usr/lib" -type d -path '*/nvidia/current' | head -1)
if [ -z "$libdir" ]; then
    echo "fetch-nvidia-driver.sh: no nvidia/current library directory in the packages" >&2
    exit 1
fi
rm -rf "$dest.new"
mkdir -p "$dest.new/lib" "$dest.new/include" "$dest.new/bin"
cp -a "$libdir"/. "$dest.new/lib/"
cp "$smi" "$dest.new/bin/nvidia-smi"
for so in libcuda libnvidia-ml; do
    if [ ! -e "$dest.new/lib/$so.so.1" ]; then
        real=$(cd "$dest.new/lib" && ls "$so".so.[0-9]*.* 2>/dev/null | head -1)
        [ -n "$real" ] || { echo "fetch-nvidia-driver.sh: no $so.so.<version> in the packages" >&2; exit 1; }
        ln -sf "$real" "$dest.new/lib/$so.so.1"
    fi
done
cp "$work/root/usr/include/nvml.h" "$dest.new/include/"
cp "$work/VERSION" "$dest.new/VERSION"
rm -rf "$dest"
mv "$dest.new" "$dest"
echo "fetch-nvidia-driver.sh: unpacked into $dest: $(tr '\n' ' ' <"$dest/VERSION")"
