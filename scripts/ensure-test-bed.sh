#!/usr/bin/env bash
# Makes sure the system packages the tests need are here (Debian/Ubuntu). As root it installs
# what is missing; otherwise it says what to install, in one command, and fails at once.
#
#   bash scripts/ensure-test-bed.sh           the offline test bed (npm run demo, npm run bench):
#                                             Dovecot, a real IMAP server speaking XOAUTH2, and
#                                             openssl for its throw-away certificates
#   bash scripts/ensure-test-bed.sh --bench   all of that, and getmail6, the peer `npm run bench`
#                                             measures mailfetchd against
#   bash scripts/ensure-test-bed.sh --suite   the test bed, and what the rest of `npm test` runs:
#                                             Chromium (the status page is tested in a real
#                                             headless browser) and Prometheus's promtool (the
#                                             shipped alert rules are checked and unit-tested)
#                                             and PostgreSQL (the shared state store; each test
#                                             file starts its own cluster, src/testbed/postgres.ts)
#
# `npm test` (pretest) and .ci/run both call it with --suite, so the two cannot drift.
set -euo pipefail
suite=false
bench=false
case "${1:-}" in
  "") ;;
  --bench) bench=true ;;
  # The suite's bench smoke run (test/bench/quick-run.test.ts) leaves getmail6 out.
  --suite) suite=true ;;
  *) echo "usage: bash scripts/ensure-test-bed.sh [--bench | --suite]" >&2; exit 2 ;;
esac
missing=()
command -v dovecot >/dev/null 2>&1 || [ -x /usr/sbin/dovecot ] || missing+=(dovecot-imapd dovecot-core)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
if [ "$bench" = true ]; then
  command -v getmail >/dev/null 2>&1 || missing+=(getmail6)
fi
if [ "$suite" = true ]; then
  # test/http/operating-surface.test.ts launches exactly this path (playwright-core drives it).
  [ -x /usr/bin/chromium ] || missing+=(chromium)
  # Debian ships promtool in the prometheus package.
  command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
  # Debian's server binaries live in /usr/lib/postgresql/<version>/bin, off PATH.
  compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null || command -v postgres >/dev/null 2>&1 || missing+=(postgresql)
fi
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing the test packages: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  # Debian's postinst scripts start the system Dovecot, Prometheus and PostgreSQL; the tests run their own
  # (or none), so a policy-rc.d keeps those services from starting while we install.
  policy=/usr/sbin/policy-rc.d
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"
    chmod 0755 "$policy"
    trap 'rm -f "$policy"' EXIT
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  exit 0
fi
echo "mailfetchd's tests need: ${missing[*]}. Install them, e.g.: sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
exit 1
