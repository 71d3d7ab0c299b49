#!/usr/bin/env bash
# Suite "singularity": hermes-backend-singularity through the CLI-faithful apptainer shim in
# hermes_backend_singularity/tests/shim (no apptainer/singularity package exists for this machine).
# The shim needs root, /usr/bin/python3, tar, util-linux and the docker CLI with the local test
# images on $DOCKER_HOST; it caches unpacked images under ~/.cache/hermes-apptainer-shim (by image id).
# Tests marked apptainer_real run only where a real apptainer/singularity is on PATH.
#
#   ROOT=... VENV=... PY=... DOCKER_HOST=... bash scripts/suites/singularity.sh [extra pytest args]
set -euo pipefail
source "$ROOT/scripts/lib.sh"

apt_install python3 tar util-linux procps
pip_install -e "$ROOT/hermes_backend_singularity[test]"

SHIM="$ROOT/hermes_backend_singularity/tests/shim/apptainer"
APPTAINER_SHIM_STATE_DIR=$(mktemp -d /tmp/hermes-apptainer-shim-suite.XXXXXX)
export APPTAINER_SHIM_STATE_DIR
cleanup() {
    # Whatever a crashed test run left: stop its instances (their namespaces take every process).
    "$SHIM" instance stop --all --force >/dev/null 2>&1 || true
    rm -rf "$APPTAINER_SHIM_STATE_DIR"
}
trap cleanup EXIT

export HERMES_REQUIRE_APPTAINER_SHIM=1
run_pytest "$ROOT/hermes_backend_singularity/tests" "$@"
