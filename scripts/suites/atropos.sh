#!/usr/bin/env bash
# Suite "atropos": hermes-atropos against the real atroposlib (installed for this suite only; it
# is ~1 GB, pip keeps its wheels in ~/.cache/pip so a warm machine downloads nothing). The tests
# start run-api on 127.0.0.1 (free port), a scripted completions server on loopback and the env
# in serve / process / evaluate mode, and stop every process they started by PID.
set -euo pipefail
source "$ROOT/scripts/lib.sh"

step "hermes-atropos + atroposlib"
pip_install -e "$ROOT/plugins/hermes_atropos[test]"

# Only the built-in plugins: other distributions in a shared venv do not change these runs.
export HERMES_DISABLE_PLUGIN_AUTOLOAD=1 WANDB_MODE=disabled HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
run_pytest "$ROOT/plugins/hermes_atropos/tests"
