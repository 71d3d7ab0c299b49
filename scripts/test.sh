#!/usr/bin/env bash
# The one test command (README, .ci/run): installs what the tests need, starts a private Docker
# engine, runs every test suite, and stops the engine by PID — also on failure.
#
#   bash scripts/test.sh [extra pytest args]
#
# Environment: HERMES_SKIP_APT=1 skips the Debian package step; HERMES_VENV (default .venv).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=${HERMES_VENV:-$ROOT/.venv}

step() { printf '\n==> %s\n' "$*"; }

# ---------------------------------------------------------------- Debian packages
need_pkgs=()
command -v dockerd >/dev/null || need_pkgs+=(docker.io)
command -v debootstrap >/dev/null || need_pkgs+=(debootstrap)
[ -x /bin/busybox ] || need_pkgs+=(busybox-static)
command -v curl >/dev/null || need_pkgs+=(curl)
if [ "${#need_pkgs[@]}" -gt 0 ] && [ "${HERMES_SKIP_APT:-0}" != 1 ]; then
    step "apt-get install ${need_pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi

# ---------------------------------------------------------------- Python packages
step "python environment in $VENV"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
PY=$VENV/bin/python
"$PY" -m pip install -q --upgrade pip >/dev/null
"$PY" -m pip install -q -e "$ROOT[test]"
# A regular (non-editable) install: with setuptools' default editable finder, the source folder
# hermes_backend_docker/ would shadow the package when Python runs from the repository root.
"$PY" -m pip install -q --force-reinstall --no-deps "$ROOT/hermes_backend_docker"
"$PY" -m pip install -q "$ROOT/hermes_backend_docker"
export PATH=$VENV/bin:$PATH

# ---------------------------------------------------------------- Docker engine + test images
step "private dockerd and test images"
# Stop it by PID however this script ends.
trap 'bash "$ROOT/scripts/docker-env.sh" stop || true' EXIT
eval "$(bash scripts/docker-env.sh start)"
bash scripts/docker-env.sh image
export DOCKER_HOST HERMES_REQUIRE_DOCKER=1

# ---------------------------------------------------------------- tests
step "pytest"
# Exit code 5 (no tests collected) is a failure too, like any non-zero code.
"$PY" -m pytest tests hermes_backend_docker/tests -q -p no:cacheprovider "$@"
