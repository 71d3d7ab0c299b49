#!/usr/bin/env bash
# hermes-backend-daytona: the real daytona SDK against the fake control plane in
# hermes_backend_daytona/tests/fake/ (started by the tests themselves on 127.0.0.1, its sandboxes
# containers on the private engine at $DOCKER_HOST). The live service is not reachable from CI;
# the daytona_live test runs only when DAYTONA_API_KEY is set.
set -euo pipefail
source "$ROOT/scripts/lib.sh"

step "hermes-backend-daytona: install (daytona SDK pinned in its pyproject)"
pip_install -e "$ROOT/hermes_backend_daytona[test]"

step "hermes-backend-daytona: tests (conformance suite, backend, CLI eval, soak)"
export HERMES_REQUIRE_DOCKER=1
export HERMES_DAYTONA_SOAK_N="${HERMES_DAYTONA_SOAK_N:-40}"
# The SDK must never reach the real service from CI: the fake fixture sets these for the tests.
unset DAYTONA_API_URL DAYTONA_SERVER_URL DAYTONA_TARGET

run_pytest "$ROOT/hermes_backend_daytona/tests"
step "bench_daytona --quick"
"$PY" "$ROOT/bench/bench_daytona.py" --quick
