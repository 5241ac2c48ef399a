#!/usr/bin/env bash
# Installs everything the build, the demo and the tests need. Idempotent: safe to run again.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
PKGS=(libpam0g-dev pamtester libpam-wrapper python3-pypamtest openssl curl ca-certificates libpam-modules)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
command -v cargo >/dev/null || { echo "cargo is required (rustup toolchain)" >&2; exit 1; }
rustup component list --installed 2>/dev/null | grep -q clippy || rustup component add clippy rustfmt || true
