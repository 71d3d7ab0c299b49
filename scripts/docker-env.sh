#!/usr/bin/env bash
# A private Docker engine and the locally built test images for hermes-backend-docker.
#
#   scripts/docker-env.sh start   start dockerd on $HERMES_DOCKER_SOCK (idempotent), print DOCKER_HOST
#   scripts/docker-env.sh image   build/import hermes-test/debian:bookworm and hermes-test/busybox:latest
#   scripts/docker-env.sh stop    stop the dockerd this script started, by its PID
#   scripts/docker-env.sh status  say whether it runs
#
# Installs nothing: the caller installs docker.io, debootstrap and busybox-static. Nothing is
# pulled from a registry (none is reachable): images are built from Debian packages with
# debootstrap, and the rootfs tarball is cached under ~/.cache/hermes-test-images/, keyed by a
# hash of the recipe, so a warm run only checks that the image is present.
set -euo pipefail

SOCK=${HERMES_DOCKER_SOCK:-/tmp/hermes-dockerd.sock}
STATE=${HERMES_DOCKER_STATE:-/tmp/hermes-docker}
PIDFILE=$STATE/dockerd.pid
LOG=$STATE/dockerd.log
CACHE=${HERMES_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hermes-test-images}
MIRROR=${HERMES_DEBIAN_MIRROR:-http://deb.debian.org/debian}

DEBIAN_IMAGE=hermes-test/debian:bookworm
DEBIAN_SUITE=bookworm
DEBIAN_PACKAGES=bash,python3,procps,ca-certificates,coreutils,tar
BUSYBOX_IMAGE=hermes-test/busybox:latest
# Bump when the way a rootfs is made changes, so cached tarballs are rebuilt.
RECIPE_VERSION=1

export DOCKER_HOST=unix://$SOCK

die() { echo "docker-env: $*" >&2; exit 1; }
log() { echo "docker-env: $*" >&2; }

running_pid() {
    # The PID from our pidfile, if that process is still a dockerd.
    [[ -f $PIDFILE ]] || return 1
    local pid
    pid=$(<"$PIDFILE")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    [[ -r /proc/$pid/comm && $(</proc/$pid/comm) == dockerd ]] || return 1
    echo "$pid"
}

ping_engine() {
    curl -fsS --max-time 2 --unix-socket "$SOCK" http://docker/_ping >/dev/null 2>&1
}

cmd_start() {
    command -v dockerd >/dev/null || die "dockerd not found: apt-get install -y --no-install-recommends docker.io"
    if pid=$(running_pid); then
        if ping_engine; then
            log "dockerd already running (pid $pid)"
            echo "export DOCKER_HOST=$DOCKER_HOST"
            return 0
        fi
    elif [[ -S $SOCK ]] && ping_engine; then
        die "an engine not started by this script already answers on $SOCK; stop it first"
    fi
    mkdir -p "$STATE"
    rm -f "$SOCK"
    # setsid: the engine must outlive this shell and not receive its terminal's signals.
    setsid dockerd \
        --host "unix://$SOCK" \
        --data-root "$STATE/data" \
        --exec-root "$STATE/exec" \
        --pidfile "$PIDFILE" \
        >"$LOG" 2>&1 </dev/null &
    local launcher=$!
    for _ in $(seq 1 300); do
        if ping_engine; then
            log "dockerd ready (pid $(running_pid || echo "$launcher"), log $LOG)"
            echo "export DOCKER_HOST=$DOCKER_HOST"
            return 0
        fi
        if ! kill -0 "$launcher" 2>/dev/null; then
            tail -n 20 "$LOG" >&2 || true
            die "dockerd exited during start-up (log: $LOG)"
        fi
        sleep 0.1
    done
    tail -n 20 "$LOG" >&2 || true
    die "dockerd did not answer on $SOCK within 30 s (log: $LOG)"
}

cmd_stop() {
    local pid
    if ! pid=$(running_pid); then
        log "no dockerd started by this script is running"
        rm -f "$PIDFILE"
        return 0
    fi
    kill -TERM "$pid"
    for _ in $(seq 1 150); do
        kill -0 "$pid" 2>/dev/null || { log "dockerd (pid $pid) stopped"; rm -f "$PIDFILE"; return 0; }
        sleep 0.1
    done
    log "dockerd (pid $pid) ignored SIGTERM for 15 s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$PIDFILE"
}

cmd_status() {
    if pid=$(running_pid) && ping_engine; then
        echo "running (pid $pid) at DOCKER_HOST=$DOCKER_HOST"
    else
        echo "not running"
        return 1
    fi
}

image_recipe() {
    # $1 = image; prints the recipe hash stored on the image, empty if absent.
    docker image inspect --format '{{ index .Config.Labels "hermes.recipe" }}' "$1" 2>/dev/null || true
}

build_debian() {
    local key tarball rootfs
    key=$(printf 'v%s\n%s\n%s\nminbase\n' "$RECIPE_VERSION" "$DEBIAN_SUITE" "$DEBIAN_PACKAGES" | sha256sum | cut -c1-16)
    if [[ $(image_recipe "$DEBIAN_IMAGE") == "$key" ]]; then
        log "$DEBIAN_IMAGE is present (recipe $key)"
        return 0
    fi
    tarball=$CACHE/debian-$DEBIAN_SUITE-$key.tar
    if [[ ! -s $tarball ]]; then
        command -v debootstrap >/dev/null || die "debootstrap not found: apt-get install -y debootstrap"
        mkdir -p "$CACHE"
        rootfs=$(mktemp -d /tmp/hermes-rootfs.XXXXXX)
        log "debootstrap $DEBIAN_SUITE into $rootfs (about a minute)"
        if ! debootstrap --variant=minbase --include="$DEBIAN_PACKAGES" "$DEBIAN_SUITE" "$rootfs" "$MIRROR" \
                >"$STATE/debootstrap.log" 2>&1; then
            tail -n 20 "$STATE/debootstrap.log" >&2 || true
            rm -rf "$rootfs"
            die "debootstrap failed (log: $STATE/debootstrap.log)"
        fi
        # Package lists and caches only make the image bigger.
        rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
        tar --numeric-owner -C "$rootfs" -cf "$tarball.part" .
        mv -f "$tarball.part" "$tarball"
        rm -rf "$rootfs"
    else
        log "using cached rootfs $tarball"
    fi
    docker import \
        --change 'CMD ["bash"]' \
        --change "LABEL hermes.recipe=$key" \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        "$tarball" "$DEBIAN_IMAGE" >/dev/null
    log "imported $DEBIAN_IMAGE (recipe $key)"
}

build_busybox() {
    local bb key rootfs
    bb=$(command -v busybox || true)
    [[ -n $bb ]] || { log "busybox not found (apt-get install busybox-static); skipping $BUSYBOX_IMAGE"; return 0; }
    key=$( (echo "v$RECIPE_VERSION"; sha256sum <"$bb") | sha256sum | cut -c1-16)
    if [[ $(image_recipe "$BUSYBOX_IMAGE") == "$key" ]]; then
        log "$BUSYBOX_IMAGE is present (recipe $key)"
        return 0
    fi
    # Only a static busybox runs in an empty rootfs.
    if ldd "$bb" >/dev/null 2>&1; then
        log "$bb is dynamically linked (install busybox-static); skipping $BUSYBOX_IMAGE"
        return 0
    fi
    rootfs=$(mktemp -d /tmp/hermes-busybox.XXXXXX)
    mkdir -p "$rootfs"/{bin,etc,tmp,root,proc,sys,dev}
    chmod 1777 "$rootfs/tmp"
    cp "$bb" "$rootfs/bin/busybox"
    local applet
    for applet in $("$bb" --list); do
        [[ -e $rootfs/bin/$applet ]] || ln -s busybox "$rootfs/bin/$applet"
    done
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$rootfs/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$rootfs/etc/group"
    tar --numeric-owner -C "$rootfs" -c . | docker import \
        --change 'CMD ["sh"]' \
        --change "LABEL hermes.recipe=$key" \
        --change 'ENV PATH=/bin' \
        - "$BUSYBOX_IMAGE" >/dev/null
    rm -rf "$rootfs"
    log "imported $BUSYBOX_IMAGE (recipe $key)"
}

cmd_image() {
    ping_engine || die "no engine answers on $SOCK: run '$0 start' first"
    mkdir -p "$STATE"
    build_busybox
    build_debian
}

case ${1:-} in
    start) cmd_start ;;
    stop) cmd_stop ;;
    image) cmd_image ;;
    status) cmd_status ;;
    *) echo "usage: $0 start|image|stop|status" >&2; exit 2 ;;
esac
