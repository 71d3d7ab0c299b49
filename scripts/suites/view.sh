#!/usr/bin/env bash
# Suite "view": `hermes view` (stats, loading, server, static report) with browser tests in real
# headless Chromium — Debian's /usr/bin/chromium driven by pip's playwright (never
# `playwright install`: it downloads a browser and fails offline).
set -euo pipefail
source "$ROOT/scripts/lib.sh"
apt_install chromium fonts-liberation
"$PY" -c 'import playwright' 2>/dev/null || pip_install playwright
"$PY" -c 'import hypothesis' 2>/dev/null || pip_install hypothesis
# Harbor's ATIF validator checks our ATIF export. The wheel needs Python >= 3.12, so it is only
# downloaded (cached) and its trajectory models are imported from it by tests/view/test_atif.py.
export HERMES_HARBOR_WHEELS="${HERMES_HARBOR_WHEELS:-$HOME/.cache/hermes-view/harbor}"
if ! ls "$HERMES_HARBOR_WHEELS"/harbor-0.26.0-*.whl >/dev/null 2>&1; then
    step "pip download harbor==0.26.0 (for its ATIF validator)"
    "$PY" -m pip download -q --disable-pip-version-check --no-deps --python-version 3.12 --only-binary=:all: \
        harbor==0.26.0 -d "$HERMES_HARBOR_WHEELS"
fi
export HERMES_REQUIRE_BROWSER=1 HERMES_REQUIRE_HARBOR=1   # missing browser / validator fails instead of skipping
export HERMES_VIEW_SCREENSHOTS="${HERMES_VIEW_SCREENSHOTS:-$ROOT/build/view-screenshots}"
run_pytest "$ROOT/tests/view"
"$PY" "$ROOT/bench/bench_view.py" --quick
echo "screenshots of every page: $HERMES_VIEW_SCREENSHOTS"
