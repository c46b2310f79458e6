#!/usr/bin/env bash
# System packages the test suite needs, installed from Debian's archive when run as root:
#   - PostgreSQL: the store's tests run against a real server;
#   - Chromium: the browser build of a model is checked in headless Chromium;
#   - npm: onnxruntime-web (the browser build), htmx (mlplan ui) and axe-core (the test
#     that checks mlplan ui's pages for accessibility) come from the npm registry, fetched
#     here once (build time) into build/npm/, so that nothing is downloaded when a test or a
#     page runs.
# Idempotent; says loudly what it could not do (those tests then fail with the reason).
set -uo pipefail
cd "$(dirname "$0")/.."

ORT_WEB_VERSION=1.30.0
HTMX_VERSION=4.0.1  # as mlplan.ui.HTMX
ELKJS_VERSION=0.12.1  # as mlplan.ui.ELK
AXE_CORE_VERSION=4.14.1  # as tests/ui/test_browser.py's AXE_CORE

have_postgres() {
  command -v initdb >/dev/null 2>&1 || compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null
}

missing=()
have_postgres || missing+=(postgresql)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v npm >/dev/null 2>&1 || missing+=(npm)

if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" != "0" ]; then
    echo "!! not root, so these Debian packages cannot be installed: ${missing[*]};" >&2
    echo "!! the tests that need them will fail (MLPLAN_SKIP_POSTGRES=1 skips PostgreSQL's)." >&2
  else
    echo "Installing from Debian's packages: ${missing[*]}…"
    export DEBIAN_FRONTEND=noninteractive
    if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }; then
      echo "!! apt-get could not install ${missing[*]}; the tests that need them will fail." >&2
    fi
    # The postgresql package may start its own cluster; the tests start a private one.
    if command -v pg_ctlcluster >/dev/null 2>&1; then
      for cluster in /etc/postgresql/*/main; do
        [ -d "$cluster" ] || continue
        version="$(basename "$(dirname "$cluster")")"
        pg_ctlcluster "$version" main stop >/dev/null 2>&1 || true
      done
    fi
  fi
fi

# npm_pack PACKAGE VERSION WHAT-NEEDS-IT: the tarball into build/npm/, once.
npm_pack() {
  local tarball="build/npm/${1#@}-${2}.tgz"
  [ -f "$tarball" ] && return 0
  mkdir -p build/npm
  if command -v npm >/dev/null 2>&1 && (cd build/npm && npm pack "$1@$2" --silent >/dev/null); then
    echo "Fetched $1 $2 from the npm registry into build/npm/."
  else
    echo "!! could not fetch $1 $2 with npm; $3." >&2
  fi
}
npm_pack onnxruntime-web "$ORT_WEB_VERSION" "the browser build's test will fail"
npm_pack htmx.org "$HTMX_VERSION" "mlplan ui serves its pages without htmx and its browser tests fail"
npm_pack elkjs "$ELKJS_VERSION" "mlplan ui shows lineage as a table only, and its graph test fails"
npm_pack axe-core "$AXE_CORE_VERSION" "the dashboard's accessibility test fails"
exit 0
