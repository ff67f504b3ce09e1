#!/usr/bin/env bash
# Bring up a PC/SC stack with vsmartcard's virtual reader (vpcd) for the validator's tests,
# benchmarks and demo: installs the packages if missing, starts pcscd, waits until it answers.
#
# Idempotent: re-running with pcscd already up does nothing but check it.
# Readers: "Virtual PCD 00 00" (card side connects to TCP 127.0.0.1:35963) and
# "Virtual PCD 00 01" (35964), see /etc/reader.conf.d/vpcd.
#
# Env: PCSC_UP_TIMEOUT (seconds to wait for pcscd, default 20).
set -euo pipefail

timeout_s="${PCSC_UP_TIMEOUT:-20}"
packages=(pcscd vsmartcard-vpcd pcsc-tools libpcsclite-dev)

log() { printf 'pcsc-up: %s\n' "$*" >&2; }

sudo_if_needed() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
if [ "${#missing[@]}" -gt 0 ]; then
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    sudo_if_needed apt-get update -qq
    sudo_if_needed apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# pcscd answers when a client can establish a context and list readers. pcsc_scan (pcsc-tools)
# never exits by itself, so probe the socket with a tiny check instead: testpcsc is not shipped,
# and `pcsc_scan -r` lists readers once and exits (pcsc-tools >= 1.6).
pcscd_answers() {
    [ -S /run/pcscd/pcscd.comm ] || return 1
    timeout 5 pcsc_scan -r 2>/dev/null | grep -q "Virtual PCD"
}

if pcscd_answers; then
    log "pcscd already running with the virtual readers"
    exit 0
fi

# Live pcscd processes (a killed daemon whose parent does not reap it stays a zombie: ignore).
pcscd_pids() { ps -C pcscd -o pid=,stat= 2>/dev/null | awk '$2 !~ /^Z/ {print $1}'; }

if [ -n "$(pcscd_pids)" ]; then
    # A pcscd that runs but does not answer (or was started before vpcd was installed).
    log "pcscd runs but does not list the virtual readers; restarting it"
    for pid in $(pcscd_pids); do sudo_if_needed kill "$pid" 2>/dev/null || true; done
    for _ in $(seq 1 50); do [ -z "$(pcscd_pids)" ] && break; sleep 0.1; done
    for pid in $(pcscd_pids); do sudo_if_needed kill -9 "$pid" 2>/dev/null || true; done
fi

# A killed pcscd leaves a pidfile and socket that block the next start.
sudo_if_needed rm -f /run/pcscd/pcscd.pid /run/pcscd/pcscd.comm
sudo_if_needed mkdir -p /run/pcscd
# Daemonized: it outlives this script and the shell that ran it.
sudo_if_needed pcscd
log "pcscd started; waiting up to ${timeout_s}s for it to answer"

deadline=$((SECONDS + timeout_s))
until pcscd_answers; do
    if [ "$SECONDS" -ge "$deadline" ]; then
        log "pcscd did not answer within ${timeout_s}s"
        exit 1
    fi
    sleep 0.2
done
log "pcscd is up: $(timeout 5 pcsc_scan -r 2>/dev/null | grep -c 'Virtual PCD') virtual reader(s)"
