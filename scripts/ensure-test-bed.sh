#!/usr/bin/env bash
# Makes sure the offline test bed's system packages are here (Debian/Ubuntu): Dovecot for a
# real IMAP server speaking XOAUTH2, openssl for its throw-away certificates.
# As root it installs what is missing; otherwise it says what to install and fails.
set -euo pipefail
missing=()
command -v dovecot >/dev/null 2>&1 || [ -x /usr/sbin/dovecot ] || missing+=(dovecot-imapd dovecot-core)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing the test bed's packages: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Debian's postinst tries to start the system Dovecot; the test bed runs its own instead.
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  exit 0
fi
echo "mailfetchd's test bed needs: ${missing[*]}. Install them, e.g.: sudo apt-get install -y ${missing[*]}" >&2
exit 1
