#!/usr/bin/env bash
# Builds the Debian package libpam-portal from this source tree (no extra cargo tools: a staged
# tree and dpkg-deb). Layout: packaging/README.md.
#
#   scripts/build-deb.sh [--out DIR] [--bin-dir DIR] [--compress xz|gzip|none]
#
#   --out DIR       where the .deb goes (default: target/deb); its path is the last line printed
#   --bin-dir DIR   package the libpam_portal.so and pam-portal already built in DIR (e.g.
#                   target/debug, for tests) instead of running `cargo build --release`.
#                   A debug build is for tests only: it is large and honours a test-only
#                   panic switch (PAM_PORTAL_TEST_PANIC).
#   --compress      dpkg-deb compression (default xz)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

out="$root/target/deb"
bin_dir=""
compress="xz"
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    --bin-dir) bin_dir="$2"; shift 2 ;;
    --compress) compress="$2"; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "build-deb.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
for tool in dpkg-deb dpkg gzip strip; do
  command -v "$tool" >/dev/null || { echo "build-deb.sh: $tool is missing (apt-get install dpkg binutils gzip)" >&2; exit 1; }
done

if [ -z "$bin_dir" ]; then
  cargo build --release --locked -p pam_portal_module -p pam_portal_full -p pam_portal --lib --bin pam-portal -p pam_portal_http
  bin_dir="${CARGO_TARGET_DIR:-$root/target}/release"
fi
for f in libpam_portal.so libpam_portal_full.so libpam_portal_http.so pam-portal; do
  [ -f "$bin_dir/$f" ] || { echo "build-deb.sh: $bin_dir/$f is missing: build it first (cargo build --release --workspace)" >&2; exit 1; }
done

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
[ -n "$version" ] || { echo "build-deb.sh: no version in Cargo.toml" >&2; exit 1; }
debver="${version}-1"
arch=$(dpkg --print-architecture)
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch 2>/dev/null || echo "$(uname -m)-linux-gnu")
doc=usr/share/doc/libpam-portal

stage=$(mktemp -d "${TMPDIR:-/tmp}/libpam-portal-stage.XXXXXX")
trap 'rm -rf "$stage"' EXIT
umask 022
chmod 0755 "$stage"

# The module (the front) in the multiarch PAM directory, where libpam-modules keeps Debian's own
# modules, and the full module and the HTTP half beside it (loaded from the module's directory).
install -D -m 0644 "$bin_dir/libpam_portal.so" "$stage/lib/$multiarch/security/pam_portal.so"
install -D -m 0644 "$bin_dir/libpam_portal_full.so" "$stage/lib/$multiarch/security/libpam_portal_full.so"
install -D -m 0644 "$bin_dir/libpam_portal_http.so" "$stage/lib/$multiarch/security/libpam_portal_http.so"
install -D -m 0755 "$bin_dir/pam-portal" "$stage/usr/sbin/pam-portal"
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$stage/lib/$multiarch/security/pam_portal.so" "$stage/lib/$multiarch/security/libpam_portal_full.so" "$stage/lib/$multiarch/security/libpam_portal_http.so" "$stage/usr/sbin/pam-portal"

# The example configuration as the conffile, mode 0600 (it may come to hold a key inline).
install -D -m 0600 conf/pam_portal.toml "$stage/etc/security/pam_portal.toml"

# Man pages, from docs/man (their one source).
for page in docs/man/*.[1-8]; do
  sec="${page##*.}"
  install -d -m 0755 "$stage/usr/share/man/man$sec"
  gzip -9n -c "$page" >"$stage/usr/share/man/man$sec/$(basename "$page").gz"
  chmod 0644 "$stage/usr/share/man/man$sec/$(basename "$page").gz"
done

# Documentation and examples (no stack is installed or changed).
install -d -m 0755 "$stage/$doc/examples/pam.d"
install -m 0644 conf/pam_portal.toml "$stage/$doc/examples/pam_portal.toml"
install -m 0644 conf/pam.d/* "$stage/$doc/examples/pam.d/"
install -m 0644 packaging/debian/copyright "$stage/$doc/copyright"
install -D -m 0644 packaging/debian/lintian-overrides "$stage/usr/share/lintian/overrides/libpam-portal"
gzip -9n -c README.md >"$stage/$doc/README.md.gz"
if [ -f docs/OPERATIONS.md ]; then gzip -9n -c docs/OPERATIONS.md >"$stage/$doc/OPERATIONS.md.gz"; fi
sed "s/@VERSION@/$debver/" packaging/debian/changelog | gzip -9n >"$stage/$doc/changelog.Debian.gz"
chmod 0644 "$stage/$doc/"*.gz

# Control area.
install -d -m 0755 "$stage/DEBIAN"
size=$(du -k -s --exclude=DEBIAN "$stage" | cut -f1)
sed -e "s/@VERSION@/$debver/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" \
  packaging/debian/control.in >"$stage/DEBIAN/control"
install -m 0644 packaging/debian/conffiles "$stage/DEBIAN/conffiles"
for s in postinst prerm postrm; do install -m 0755 "packaging/debian/$s" "$stage/DEBIAN/$s"; done
(cd "$stage" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) >"$stage/DEBIAN/md5sums"
chmod 0644 "$stage/DEBIAN/md5sums" "$stage/DEBIAN/control"

mkdir -p "$out"
deb="$out/libpam-portal_${debver}_${arch}.deb"
dpkg-deb --root-owner-group -Z"$compress" --build "$stage" "$deb" >/dev/null
dpkg-deb --info "$deb" >/dev/null
echo "$deb"
