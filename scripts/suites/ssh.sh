#!/usr/bin/env bash
# Suite "ssh": hermes-backend-ssh against two REAL sshds on 127.0.0.1 (high ports, own host key,
# own client key, own user), started here and stopped by PID in the EXIT trap.
#
#   ROOT=... VENV=... PY=... bash scripts/suites/ssh.sh [extra pytest args]
#   HERMES_SSH_KEEP=1 ... keeps the sshds running and prints the env to use them (development).
set -euo pipefail
source "$ROOT/scripts/lib.sh"

# Installing openssh-server would start the system's sshd (on 0.0.0.0:22) through invoke-rc.d;
# a temporary policy-rc.d forbids that. The tests start their own sshds on 127.0.0.1 only.
if ! dpkg-query -W -f='${Status}' openssh-server 2>/dev/null | grep -q 'ok installed' && [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    apt_install openssh-server
    rm -f /usr/sbin/policy-rc.d
    trap - EXIT
fi
apt_install openssh-server openssh-client procps
pip_install -e "$ROOT/hermes_backend_ssh[test]"

SSH_USER=${HERMES_SSH_TEST_USER:-hermes-ssh-test}
SH_USER=${HERMES_SSH_TEST_SH_USER:-hermes-ssh-test-sh}   # login shell /bin/sh: the non-bash path
step "test users $SSH_USER, $SH_USER and keys"
if ! id "$SSH_USER" >/dev/null 2>&1; then
    useradd --create-home --shell /bin/bash "$SSH_USER"
fi
if ! id "$SH_USER" >/dev/null 2>&1; then
    useradd --create-home --shell /bin/sh "$SH_USER"
fi
# A locked account ('!') is refused by sshd even for key auth; '*' means "no password".
usermod -p '*' "$SSH_USER"
usermod -p '*' "$SH_USER"
mkdir -p /run/sshd
chmod 755 /run/sshd

WORK=$(mktemp -d /tmp/hermes-sshd.XXXXXX)
chmod 755 "$WORK"   # sshd reads authorized_keys as the test user
pids=()
SMALL=""
cleanup() {
    local p
    if [ -n "$SMALL" ]; then umount "$SMALL" 2>/dev/null || true; fi
    for p in "${pids[@]}"; do
        kill "$p" 2>/dev/null || true
    done
    for p in "${pids[@]}"; do
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
if [ "${HERMES_SSH_KEEP:-0}" != 1 ]; then
    trap cleanup EXIT
fi

# A 2 MiB filesystem for the "remote disk full" test (skipped where mounting is not allowed).
mkdir -p "$WORK/small"
if mount -t tmpfs -o size=2m,mode=0755 hermes-ssh-small "$WORK/small" 2>/dev/null; then
    SMALL="$WORK/small"
    chown "$SSH_USER" "$SMALL"
    export HERMES_SSH_TEST_SMALL_FS="$SMALL"
else
    echo "note: cannot mount a tmpfs here; the disk-full-during-write test will skip" >&2
fi

ssh-keygen -q -t ed25519 -N '' -C hermes-test-host -f "$WORK/host_ed25519"
ssh-keygen -q -t ed25519 -N '' -C hermes-test-client -f "$WORK/client_ed25519"
cp "$WORK/client_ed25519.pub" "$WORK/authorized_keys"
chmod 644 "$WORK/authorized_keys"

# start_sshd PORT — one sshd on 127.0.0.1:PORT in the foreground (-D), its PID recorded.
start_sshd() {
    local port=$1 conf="$WORK/sshd-$1.conf"
    cat > "$conf" <<EOF
Port $port
ListenAddress 127.0.0.1
HostKey $WORK/host_ed25519
PidFile $WORK/sshd-$port.pid
AuthorizedKeysFile $WORK/authorized_keys
StrictModes no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
AllowUsers $SSH_USER $SH_USER
MaxSessions 64
MaxStartups 64:30:128
PrintMotd no
Subsystem sftp internal-sftp
LogLevel ERROR
EOF
    /usr/sbin/sshd -t -f "$conf"
    /usr/sbin/sshd -D -e -f "$conf" 2>>"$WORK/sshd-$port.log" &
    pids+=($!)
    for _ in $(seq 100); do
        if "$PY" -c "import socket,sys; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null; then
            printf '[127.0.0.1]:%s %s\n' "$port" "$(cut -d' ' -f1,2 "$WORK/host_ed25519.pub")" >> "$WORK/known_hosts"
            return 0
        fi
        sleep 0.1
    done
    echo "sshd on port $port did not start:" >&2
    cat "$WORK/sshd-$port.log" >&2
    return 1
}

step "two sshds on 127.0.0.1"
PORT_A=$(free_port)
start_sshd "$PORT_A"
PORT_B=$(free_port)
while [ "$PORT_B" = "$PORT_A" ]; do PORT_B=$(free_port); done
start_sshd "$PORT_B"
echo "sshd A on $PORT_A (pid ${pids[0]}), sshd B on $PORT_B (pid ${pids[1]})"

export HERMES_SSH_TEST_PORTS="$PORT_A,$PORT_B"
export HERMES_SSH_TEST_USER="$SSH_USER"
export HERMES_SSH_TEST_SH_USER="$SH_USER"
export HERMES_SSH_TEST_KEY="$WORK/client_ed25519"
export HERMES_SSH_TEST_KNOWN_HOSTS="$WORK/known_hosts"
export HERMES_SSH_TEST_HOST_KEY="$WORK/host_ed25519"          # for tests that start a killable sshd
export HERMES_SSH_TEST_AUTHORIZED_KEYS="$WORK/authorized_keys"
export HERMES_REQUIRE_SSH=1

if [ "${HERMES_SSH_KEEP:-0}" = 1 ]; then
    echo "sshds kept running (pids ${pids[*]}); use:"
    env | grep -E '^HERMES_(SSH_TEST|REQUIRE_SSH)' | sed 's/^/export /'
    exit 0
fi

step "pytest hermes_backend_ssh/tests"
rc=0
run_pytest "$ROOT/hermes_backend_ssh/tests" "$@" || rc=$?

step "benchmark smoke: bench/bench_ssh.py --quick"
export XDG_DATA_HOME="$WORK/data"   # where the backend remembers hosts: not the real home
timeout 300 "$PY" "$ROOT/bench/bench_ssh.py" --quick || { [ "$rc" -ne 0 ] || rc=1; }
exit "$rc"
