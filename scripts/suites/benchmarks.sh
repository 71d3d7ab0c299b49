#!/usr/bin/env bash
# Benchmark environments: terminal-bench (Harbor task directories) and swe (function + SWE-bench
# tasks), end to end on the private Docker engine with the oracle agent, plus the sandbox-start
# benchmark in --quick mode. Task images are built FROM the local test image (the image map
# replaces names that cannot be pulled here); the engine keeps them, so a warm run builds nothing.
set -euo pipefail
source "$ROOT/scripts/lib.sh"

# Editable installs from this checkout are kept (re-running pip costs ~1 min); anything else is installed.
need=()
for dir in plugins/hermes_env_terminal_bench plugins/hermes_env_swe; do
    dist=$(sed -n 's/^name = "\(.*\)"/\1/p' "$ROOT/$dir/pyproject.toml" | head -1)
    "$PY" - "$dist" "$ROOT/$dir" <<'PYEOF' || need+=(-e "$ROOT/$dir[test]")
import json, sys
from importlib.metadata import PackageNotFoundError, distribution
try:
    url = json.loads(distribution(sys.argv[1]).read_text("direct_url.json") or "{}")
except PackageNotFoundError:
    sys.exit(1)
sys.exit(0 if url.get("url") == "file://" + sys.argv[2] and url.get("dir_info", {}).get("editable") else 1)
PYEOF
done
[ "${#need[@]}" -eq 0 ] || pip_install "${need[@]}"
"$PY" -c "import pyarrow, pytest_asyncio" 2>/dev/null || pip_install "pyarrow>=14" "pytest-asyncio>=0.23"

export HERMES_REQUIRE_DOCKER=1
# Separate runs: both test folders have a conftest module of their own.
run_pytest "$ROOT/plugins/hermes_env_terminal_bench/tests"
run_pytest "$ROOT/plugins/hermes_env_swe/tests"
step "bench_benchmarks --quick"
"$PY" "$ROOT/bench/bench_benchmarks.py" --quick
