#!/usr/bin/env bash
# Suite "view": `hermes view` (stats, loading, server, static report) with browser tests in real
# headless Chromium — Debian's /usr/bin/chromium driven by pip's playwright (never
# `playwright install`: it downloads a browser and fails offline).
set -euo pipefail
source "$ROOT/scripts/lib.sh"
apt_install chromium fonts-liberation
"$PY" -c 'import playwright' 2>/dev/null || pip_install playwright
"$PY" -c 'import hypothesis' 2>/dev/null || pip_install hypothesis
export HERMES_REQUIRE_BROWSER=1           # a missing browser fails the suite instead of skipping
export HERMES_VIEW_SCREENSHOTS="${HERMES_VIEW_SCREENSHOTS:-$ROOT/build/view-screenshots}"
run_pytest "$ROOT/tests/view"
"$PY" "$ROOT/bench/bench_view.py" --quick
echo "screenshots of every page: $HERMES_VIEW_SCREENSHOTS"
