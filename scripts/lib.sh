# Shared helpers for scripts/test.sh and the suite scripts in scripts/suites/ (sourced, not run).
#
# A suite script is `scripts/suites/<name>.sh`: it installs what its tests need with the helpers
# below (idempotent: a warm machine installs nothing), starts and stops its own services by PID
# (an EXIT trap), and ends with `run_pytest PATHS...`. test.sh exports ROOT, VENV, PY, PATH and
# DOCKER_HOST (the private engine it started) before running each suite.

step() { printf '\n==> %s\n' "$*"; }

# apt_install PKG... — install the Debian packages that are missing (apt-get update once per run).
apt_install() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    if [ "${HERMES_SKIP_APT:-0}" = 1 ]; then
        echo "missing Debian packages (HERMES_SKIP_APT=1): ${missing[*]}" >&2
        return 1
    fi
    step "apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if [ ! -f "${HERMES_APT_STAMP:-/tmp/hermes-apt-updated}" ]; then
        apt-get update -qq
        touch "${HERMES_APT_STAMP:-/tmp/hermes-apt-updated}"
    fi
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# pip_install ARGS... — pip into the test venv, quietly.
pip_install() {
    "$PY" -m pip install -q --disable-pip-version-check "$@"
}

# run_pytest ARGS... — pytest in the venv; "no tests collected" (exit 5) fails like any error.
run_pytest() {
    local rc=0
    "$PY" -m pytest -q -p no:cacheprovider "$@" || rc=$?
    if [ "$rc" -eq 5 ]; then
        echo "pytest collected no tests in: $*" >&2
    fi
    return "$rc"
}

# free_port — an unused TCP port on 127.0.0.1.
free_port() {
    "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
