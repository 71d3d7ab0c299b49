#!/usr/bin/env bash
# Suite "web": hermes-toolset-web (web_search, web_extract). Every test talks to HTTP servers the
# tests start on 127.0.0.1 (fakes of the five search APIs speaking their documented formats,
# real-world-shaped pages, a PDF); they stop with the test that started them. Nothing leaves
# the machine.
#
#   ROOT=... VENV=... PY=... bash scripts/suites/web.sh [extra pytest args]
set -euo pipefail
source "$ROOT/scripts/lib.sh"

step "hermes-toolset-web"
pip_install -e "$ROOT/plugins/hermes_toolset_web[test]"

# Only the built-in plugins (and this distribution, which the tests load themselves): other
# distributions in a shared venv do not change these runs.
export HERMES_DISABLE_PLUGIN_AUTOLOAD=1
run_pytest "$ROOT/plugins/hermes_toolset_web/tests" "$@"
