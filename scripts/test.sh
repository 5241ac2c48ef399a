#!/usr/bin/env bash
# The test command: installs what the tests need, builds every workspace member (the module,
# portal-sim, the pam-drive test driver), then runs unit and integration tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cargo build --workspace
cargo test --workspace "$@"
