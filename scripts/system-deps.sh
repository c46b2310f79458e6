#!/usr/bin/env bash
# System packages the test suite needs, installed from Debian's archive when run as root:
# PostgreSQL (the store's tests run against a real server). Idempotent; says loudly what it
# could not do, and the PostgreSQL tests then fail with the reason unless
# MLPLAN_SKIP_POSTGRES=1 is set.
set -uo pipefail

have_postgres() {
  command -v initdb >/dev/null 2>&1 || compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null
}

if have_postgres; then
  exit 0
fi
if [ "$(id -u)" != "0" ]; then
  echo "!! PostgreSQL is not installed and this is not root: install the 'postgresql' package," >&2
  echo "!! or the store's PostgreSQL tests will fail (MLPLAN_SKIP_POSTGRES=1 skips them)." >&2
  exit 0
fi
echo "Installing PostgreSQL from Debian's packages (for the store's tests)…"
export DEBIAN_FRONTEND=noninteractive
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends postgresql >/dev/null; }; then
  echo "!! apt-get could not install PostgreSQL; the store's PostgreSQL tests will fail." >&2
  exit 0
fi
# The package may start its own cluster; the tests start a private one, so stop it.
if command -v pg_ctlcluster >/dev/null 2>&1; then
  for cluster in /etc/postgresql/*/main; do
    [ -d "$cluster" ] || continue
    version="$(basename "$(dirname "$cluster")")"
    pg_ctlcluster "$version" main stop >/dev/null 2>&1 || true
  done
fi
have_postgres && echo "PostgreSQL installed."
