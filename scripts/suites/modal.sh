#!/usr/bin/env bash
# Suite "modal": hermes-backend-modal through the REAL modal SDK against a local gRPC fake of
# Modal's API (hermes_backend_modal/tests/fake), whose sandboxes are containers on the private
# Docker engine test.sh started ($DOCKER_HOST, image hermes-test/debian:bookworm). Nothing talks
# to Modal's service. The fakes run as pytest's child processes and remove their containers when
# they stop; the EXIT trap below also stops a fake (by the pid in its port file) and removes its
# containers (by this run's label) if pytest itself was killed.
#
#   ROOT=... VENV=... PY=... DOCKER_HOST=... bash scripts/suites/modal.sh [extra pytest args]
#   HERMES_MODAL_SOAK=200 ...   the full soak (CI default: 40 rollouts with faults)
set -euo pipefail
source "$ROOT/scripts/lib.sh"

apt_install docker.io
pip_install -e "$ROOT/hermes_backend_modal[test]"

export HERMES_MODAL_FAKE_RUN="ci-$$-$(date +%s)"
export HERMES_MODAL_FAKE_DIR
HERMES_MODAL_FAKE_DIR=$(mktemp -d /tmp/hermes-modal-suite.XXXXXX)
cleanup() {
    local f pid ids
    for f in "$HERMES_MODAL_FAKE_DIR"/*/port.json; do
        [ -e "$f" ] || continue
        pid=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["pid"])' "$f" 2>/dev/null || true)
        [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
    done
    ids=$(docker ps -aq --filter "label=hermes.fake-modal.run=$HERMES_MODAL_FAKE_RUN" 2>/dev/null || true)
    [ -n "$ids" ] && docker rm -f $ids >/dev/null 2>&1 || true
    rm -rf "$HERMES_MODAL_FAKE_DIR"
}
trap cleanup EXIT

export HERMES_MODAL_SOAK=${HERMES_MODAL_SOAK:-40}
export HERMES_REQUIRE_DOCKER=1
step "pytest hermes_backend_modal/tests (real modal SDK -> local gRPC fake -> containers)"
run_pytest "$ROOT/hermes_backend_modal/tests" "$@"
