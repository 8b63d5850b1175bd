#!/usr/bin/env bash
# Node and js/'s pinned @magenta/music let tests/test_magenta_js_node.py run our exports in
# magenta-js itself, and give the web page its scripts (js/dist, by js/build_page.js). Without
# them (no root, no apt, no network) those tests skip, so this never fails. Used by `make setup`:
# Debian's nodejs and npm through apt when node is missing, then `npm ci` when js/node_modules is
# missing or older than the lock file, then the page's scripts when js/dist is older.
cd "$(dirname "$0")/.." || exit 0
if ! command -v node >/dev/null && command -v apt-get >/dev/null; then
  SUDO=$( [ "$(id -u)" = 0 ] || echo sudo )
  ( $SUDO apt-get update -qq && \
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nodejs npm ) \
    >/dev/null 2>&1 || echo "Node not installed; the magenta-js tests will skip"
fi
if ! command -v npm >/dev/null; then
  exit 0
fi
installed=js/node_modules/.package-lock.json  # npm writes it at every install
if [ ! -e "$installed" ] || [ js/package-lock.json -nt "$installed" ] \
  || [ js/package.json -nt "$installed" ]; then
  npm ci --prefix js --ignore-scripts --no-audit --no-fund >/dev/null 2>&1 \
    || echo "js/node_modules not installed (npm ci failed); the magenta-js tests will skip"
fi
if [ -e "$installed" ] && { [ ! -e js/dist/versions.json ] || [ "$installed" -nt js/dist/versions.json ] \
  || [ js/build_page.js -nt js/dist/versions.json ]; }; then
  node js/build_page.js >/dev/null || echo "js/dist not built; the web page cannot be exported"
fi
exit 0
