#!/usr/bin/env bash
# The core benchmarks once, in quick mode, so they cannot rot. Timings are printed, never
# asserted (the machines are shared and noisy); a script that crashes fails the suite.
set -euo pipefail
source "$ROOT/scripts/lib.sh"
cd "$ROOT"
rc=0
for bench in "bench/bench_core.py --quick" "bench/bench_floor.py --quick --big 50" "bench/bench_memory.py --quick" \
             "bench/bench_eval.py" "bench/bench_processes.py --quick" "bench/bench_docker.py --quick" \
             "bench/bench_docker_scale.py --quick"; do
    step "$bench"
    # A script may exit non-zero when a target is missed (that is a number, not a failure);
    # a crash (a traceback) or a hang (timeout) fails the suite.
    # shellcheck disable=SC2086
    out=$(timeout 600 "$PY" $bench 2>&1) || code=$?
    printf '%s\n' "$out"
    if [ "${code:-0}" -eq 124 ] || grep -q '^Traceback' <<<"$out"; then
        echo "benchmark did not run through: $bench" >&2
        rc=1
    fi
    unset code
done
exit "$rc"
