#!/usr/bin/env bash
# Builds the RPM pam_portal from this checkout with packaging/rpm/pam_portal.spec.
#
#   scripts/build-rpm.sh [--out DIR] [--bin-dir DIR]
#
#   --out DIR       rpmbuild's top directory (default: target/rpm); the RPMs land in DIR/RPMS
#   --bin-dir DIR   package binaries already built in DIR (rpmbuild -bb --define prebuilt)
#                   instead of building the source RPM and compiling inside rpmbuild
# Needs rpmbuild (RHEL family: dnf install rpm-build; Debian: apt-get install rpm).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
out="$root/target/rpm"
bin_dir=""
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    --bin-dir) bin_dir=$(cd "$2" && pwd); shift 2 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "build-rpm.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
command -v rpmbuild >/dev/null || { echo "build-rpm.sh: rpmbuild is missing (dnf install rpm-build, or apt-get install rpm)" >&2; exit 1; }
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
spec_version=$(sed -n 's/^Version: *//p' packaging/rpm/pam_portal.spec)
[ "$version" = "$spec_version" ] || { echo "build-rpm.sh: Cargo.toml says $version, the spec $spec_version: update the spec" >&2; exit 1; }

mkdir -p "$out"/{SOURCES,SPECS,BUILD,RPMS,SRPMS}
# The source tarball: the tracked files of the checkout (plus any not yet committed), no target/.
tar --exclude=./target --exclude=./.git --exclude='./*/target' \
    --transform "s,^\.,pam_portal-$version," -czf "$out/SOURCES/pam_portal-$version.tar.gz" .
cp packaging/rpm/pam_portal.spec "$out/SPECS/"
if [ -n "$bin_dir" ]; then
  rpmbuild -bb --define "_topdir $out" --define "prebuilt $bin_dir" "$out/SPECS/pam_portal.spec"
else
  rpmbuild -ba --define "_topdir $out" "$out/SPECS/pam_portal.spec"
fi
find "$out/RPMS" "$out/SRPMS" -name '*.rpm' -newer "$out/SPECS/pam_portal.spec"
