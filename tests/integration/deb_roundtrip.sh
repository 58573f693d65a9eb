# make deb, then a real install on a fresh Debian 12 in a container: the
# package lists exactly what `make install PREFIX=/usr` lays out; dpkg -i
# (with only the packages its Depends name, from Debian) installs it; the
# installed gpumem run --sim limits a program; its man pages are there;
# dpkg --purge leaves no file behind that was not there before.
#
# The Debian 12 root file system: GPUMEM_DEBIAN_ROOTFS (a tarball), by
# default /var/cache/gpumem/debian12-minbase.tar, made once with debootstrap
# (needs deb.debian.org; about two minutes) and kept; the dependencies'
# .debs are fetched once with apt-get download into /var/cache/gpumem/debs,
# and those of gpumem-k8s and gpumem-dra (gRPC's C core and what it links,
# protobuf-c, libcurl and its own, none of them in minbase) into
# /var/cache/gpumem/debs-k8s.
# No registry is needed: the image is a `docker import` of that tarball.
. tests/integration/lib.sh
if [ "${SAN:-0}" = 1 ]; then skip deb_roundtrip "the package is tested in the plain build"; exit 0; fi
for t in dpkg-deb docker; do
    command -v $t >/dev/null || { skip deb_roundtrip "no $t"; exit 0; }
done
if ! why=$(timeout 20 docker info 2>&1 >/dev/null); then
    skip deb_roundtrip "dockerd unavailable: $(printf '%s' "$why" | tr '\n' ' ' | cut -c1-200)"; exit 0
fi
cache=/var/cache/gpumem
rootfs=${GPUMEM_DEBIAN_ROOTFS:-$cache/debian12-minbase.tar}
if [ ! -s "$rootfs" ]; then
    command -v debootstrap >/dev/null || { skip deb_roundtrip "no $rootfs and no debootstrap to make it"; exit 0; }
    mkdir -p "$(dirname "$rootfs")"
    if ! out=$(debootstrap --variant=minbase bookworm "$T/rootfs" http://deb.debian.org/debian 2>&1); then
        skip deb_roundtrip "debootstrap failed: $(tail -2 <<<"$out" | tr '\n' ' ')"; exit 0
    fi
    tar -C "$T/rootfs" -cf "$rootfs.tmp.$$" . && mv "$rootfs.tmp.$$" "$rootfs"
    rm -rf "$T/rootfs"
fi
# gpumem-dra also links libcurl, whose dependencies minbase lacks too.
k8s_pkgs="libgrpc29 libprotobuf-c1 libabsl20220623 libc-ares2 libre2-9 libssl3 libprotobuf32 libprotoc32
          libcurl4 libbrotli1 libgssapi-krb5-2 libk5crypto3 libkrb5-3 libkrb5support0 libkeyutils1 libldap-2.5-0
          libsasl2-2 libsasl2-modules-db libnghttp2-14 libpsl5 librtmp1 libssh2-1"
debs_k8s=$cache/debs-k8s
for p in $k8s_pkgs; do
    ls "$debs_k8s/${p}"_*.deb >/dev/null 2>&1 && continue
    mkdir -p "$debs_k8s"
    # shellcheck disable=SC2086
    out=$(cd "$debs_k8s" && apt-get download $k8s_pkgs 2>&1) ||
        { skip deb_roundtrip "apt-get download failed: $(tail -1 <<<"$out")"; exit 0; }
    break
done
debs=$cache/debs
if ! ls "$debs"/libmicrohttpd12_*.deb "$debs"/libjansson4_*.deb >/dev/null 2>&1; then
    mkdir -p "$debs"
    out=$(cd "$debs" && apt-get download libmicrohttpd12 libjansson4 2>&1) ||
        { skip deb_roundtrip "apt-get download failed: $(tail -1 <<<"$out")"; exit 0; }
fi

out=$(make -s --no-print-directory -C "$TOP" deb BUILD="$BUILD" 2>&1) || { fail make_deb "$out"; exit 0; }
deb=$(ls "$TOP/$BUILD"/gpumem_*.deb 2>/dev/null | tail -n1)
[ -n "$deb" ] && ok make_deb || { fail make_deb "no $BUILD/gpumem_*.deb: $out"; exit 0; }

# Exactly the install tree.
make -s --no-print-directory -C "$TOP" install BUILD="$BUILD" DESTDIR="$T/tree" PREFIX=/usr SYSTEMDUNITDIR=/usr/lib/systemd/system >/dev/null
(cd "$T/tree" && find . -mindepth 1 | sed 's|^\./||; s|/$||' | sort) >"$T/tree.list"
dpkg-deb -c "$deb" | awk '{ print $6 }' | sed 's|^\./||; s|/$||' | grep -v '^$' | sort >"$T/deb.list"
cmp -s "$T/tree.list" "$T/deb.list" && ok deb_lists_install_tree || fail deb_lists_install_tree "$(diff "$T/tree.list" "$T/deb.list" | tr '\n' ' ')"
dpkg-deb -f "$deb" Depends | grep -q 'libjansson4.*libmicrohttpd12.*libgrpc29.*libprotobuf-c1' && ok deb_depends ||
    fail deb_depends "$(dpkg-deb -f "$deb" Depends)"

img=gpumem-debian12:deb-$$
docker import "$rootfs" "$img" >/dev/null || { fail debian_image "docker import $rootfs failed"; exit 0; }
finish() { docker rmi -f "$img" >/dev/null 2>&1; cleanup; }
trap finish EXIT
cp "$deb" "$T/gpumem.deb"
# In the container: the file list before; install; use; purge; the list after.
cat >"$T/inside.sh" <<'IN'
set -u
snap() { find / -xdev \( -path /var/lib/dpkg -o -path /var/log -o -path /var/cache/debconf -o -path /t \) -prune -o -print | sort; }
snap >/t/out/before
dpkg -i /debs/*.deb /debs-k8s/*.deb /t/gpumem.deb >/t/out/install.log 2>&1 || { echo "dpkg -i failed"; cat /t/out/install.log; exit 1; }
echo "installed $(dpkg-query -W -f '${Version}' gpumem)"
gpumem run --sim --limit 1G --summary -- /t/alloc_client init info alloc 600M expect 0 alloc 600M expect 2 2>&1 || echo "run failed: $?"
ls /usr/share/man/man1/gpumem-run.1 /usr/share/man/man1/gpumem-k8s.1 /usr/libexec/gpumem/sim/libcuda.so.1 /usr/lib/gpumem/libgpumem.so 2>&1
gpumem-k8s --version 2>&1
dpkg --purge gpumem >/t/out/purge.log 2>&1 && echo purged || cat /t/out/purge.log
dpkg --purge libmicrohttpd12 libjansson4 $K8S_PKGS >>/t/out/purge.log 2>&1
snap >/t/out/after
IN
mkdir -p "$T/out"; chmod 777 "$T/out"
out=$(timeout 300 docker run --rm --network none --tmpfs /run --tmpfs /tmp -v "$T/gpumem.deb:/t/gpumem.deb:ro" \
    -v "$debs:/debs:ro" -v "$debs_k8s:/debs-k8s:ro" -e K8S_PKGS="$k8s_pkgs" -v "$CLIENT:/t/alloc_client:ro" -v "$T/inside.sh:/t/inside.sh:ro" -v "$T/out:/t/out" \
    "$img" sh /t/inside.sh 2>&1)
expect_in deb_installs_on_debian12 "installed $(dpkg-deb -f "$deb" Version)" "$out"
case "$out" in *"total=1073741824"*"alloc -> 0"*"alloc -> 2"*"1 refused allocation"*) ok installed_gpumem_run_sim ;;
*) fail installed_gpumem_run_sim "$(tr '\n' '|' <<<"$out" | cut -c1-800)" ;; esac
case "$out" in *"No such file"*) fail installed_files_in_place "$out" ;; *) ok installed_files_in_place ;; esac
expect_in installed_gpumem_k8s_runs "gpumem-k8s $(dpkg-deb -f "$deb" Version)" "$out"
expect_in deb_purges "purged" "$out"
if [ -s "$T/out/before" ] && [ -s "$T/out/after" ]; then
    left=$(comm -13 "$T/out/before" "$T/out/after")
    [ -z "$left" ] && ok purge_leaves_nothing || fail purge_leaves_nothing "$(tr '\n' ' ' <<<"$left" | cut -c1-600)"
else
    fail purge_leaves_nothing "no file lists: $(tr '\n' '|' <<<"$out" | cut -c1-400)"
fi
exit 0
