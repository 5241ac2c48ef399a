#!/usr/bin/env bash
# The main job on the embedded default: build, start portal-sim with the demo users, and log a
# demo user in through the real module (pamtester, under pam_wrapper so nothing in /etc/pam.d
# changes and the module's pam_syslog lines are shown), then show a wrong answer refused.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

bash scripts/install-deps.sh
echo "== building"
cargo build --workspace --quiet

work=$(mktemp -d /tmp/pam_portal-demo.XXXXXX)
sim_pid=""
cleanup() {
  [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "== starting portal-sim with conf/demo-fixture.toml"
target/debug/portal-sim --fixture conf/demo-fixture.toml --tls-dir "$work" >"$work/sim.out" 2>"$work/sim.err" &
sim_pid=$!
for _ in $(seq 1 100); do grep -q '^READY' "$work/sim.out" 2>/dev/null && break; sleep 0.1; done
grep -q '^READY' "$work/sim.out" || { echo "portal-sim did not start:"; cat "$work/sim.err"; exit 1; }
url=$(sed -n 's/^PORTAL_URL=//p' "$work/sim.out")
echo "   portal at $url"

cat >"$work/pam_portal.toml" <<CONF
[portal]
url = "$url"
api_user = "SL100001"
api_key = "0123456789abcdef"
ca_file = "$work/ca.pem"

[auth]
question_choice = "first"   # so that the demo knows which question alice is asked
fail_delay_ms = 0

[lockout]
dir = "$work/lock"
CONF
chmod 600 "$work/pam_portal.toml"
mkdir -p "$work/pam.d"
module="$here/target/debug/libpam_portal.so"
printf 'auth required %s config=%s\naccount required %s config=%s\n' \
  "$module" "$work/pam_portal.toml" "$module" "$work/pam_portal.toml" >"$work/pam.d/portal-demo"

wrapper=$(dpkg -L libpam-wrapper | grep 'libpam_wrapper.so$' | head -n1)
login() { # user, rhost, answers (one per line)
  printf '%b' "$3" | LD_PRELOAD="$wrapper" PAM_WRAPPER=1 PAM_WRAPPER_SERVICE_DIR="$work/pam.d" \
    PAM_WRAPPER_DEBUGLEVEL=2 pamtester -v -I rhost="$2" portal-demo "$1" authenticate acct_mgmt 2>&1 |
    grep -v -e 'pwrap_init' -e 'copy_confdir' -e 'pwrap_load_lib_handle' -e 'no default config' -e '^$' |
    sed -e 's/PWRAP_[A-Z]*\[[^]]*\] - SYSLOG([0-9]*): /   log: /' -e 's/\(Password: \|pet? \)/\1\n/g' || true
}

echo
echo "== alice logs in from 198.51.100.7: password Wonder-Land42, first pet Rex"
login alice 198.51.100.7 'Wonder-Land42\nRex\n'
echo
echo "== alice again, with a wrong answer"
login alice 198.51.100.7 'Wonder-Land42\nFluffy\n'
echo
echo "== lockout state after that (pam-portal status)"
target/debug/pam-portal --config "$work/pam_portal.toml" status
