#!/usr/bin/env bash
# Best-effort system prerequisites for the test suite: headless Chromium renders the report page
# in one test. Installed with apt when we are root and it is missing; elsewhere that test skips
# and says why.
set -u
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "[test-prereqs] installing chromium (headless report test)"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "[test-prereqs] chromium could not be installed; the report screenshot test will skip"
else
  echo "[test-prereqs] chromium not found and not root; the report screenshot test will skip"
fi
exit 0
