#!/usr/bin/env bash
# Benchmark environments: terminal-bench (Harbor task directories) and swe (function + SWE-bench
# tasks), end to end on the private Docker engine with the oracle agent, plus the sandbox-start
# benchmark in --quick mode. Task images are built FROM the local test image (the image map
# replaces names that cannot be pulled here); the engine keeps them, so a warm run builds nothing.
set -euo pipefail
source "$ROOT/scripts/lib.sh"
pip_install -e "$ROOT/hermes_backend_docker[test]" -e "$ROOT/plugins/hermes_env_terminal_bench[test]" \
    -e "$ROOT/plugins/hermes_env_swe[test]"
export HERMES_REQUIRE_DOCKER=1
run_pytest "$ROOT/plugins/hermes_env_terminal_bench/tests" "$ROOT/plugins/hermes_env_swe/tests"
step "bench_benchmarks --quick"
"$PY" "$ROOT/bench/bench_benchmarks.py" --quick
