#!/usr/bin/env bash
# Suite "browser": hermes-toolset-browser in a real headless Chromium (Debian's chromium package,
# driven by pip's playwright; `playwright install` is never run). Test pages come from HTTP
# servers the tests start on 127.0.0.1. The docker test (a server in a container, published on
# 127.0.0.1) runs when DOCKER_HOST and hermes-backend-docker are there, as test.sh provides.
#
#   ROOT=... VENV=... PY=... [DOCKER_HOST=...] bash scripts/suites/browser.sh [extra pytest args]
set -euo pipefail
source "$ROOT/scripts/lib.sh"

apt_install chromium fonts-liberation
step "hermes-toolset-browser (+ playwright)"
pip_install -e "$ROOT/plugins/hermes_toolset_browser[test]"

# A missing browser fails the run instead of skipping it; only built-in plugins autoload.
export HERMES_REQUIRE_BROWSER=1 HERMES_CHROMIUM=/usr/bin/chromium HERMES_DISABLE_PLUGIN_AUTOLOAD=1
run_pytest "$ROOT/plugins/hermes_toolset_browser/tests" "$@"
