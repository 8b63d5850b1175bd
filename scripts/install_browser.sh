#!/usr/bin/env bash
# Debian's chromium for tests/test_web_page.py, which drives it headless through Playwright for
# Python (requirements-dev.txt; Playwright's own browser download is never used). Without root,
# apt or network those tests skip, so this never fails. Used by `make setup`.
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
if command -v apt-get >/dev/null; then
  SUDO=$( [ "$(id -u)" = 0 ] || echo sudo )
  ( $SUDO apt-get update -qq && \
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium ) \
    >/dev/null 2>&1 || echo "chromium not installed; the web page's browser tests will skip"
else
  echo "no apt-get: chromium not installed; the web page's browser tests will skip"
fi
exit 0
