#!/usr/bin/env bash
# The rider's browser part of a top-up in a real headless Chromium: Debian's chromium and
# chromium-driver (installed by scripts/test.sh), Selenium pinned in
# tests/browser/requirements.txt in a venv under target/. Builds `mancard`, then runs
# tests/browser/topup_in_browser.py against a sandbox gateway and a backend, both real
# processes on loopback. Exits non-zero on the first failed check.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=target/browser-venv
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install -q --disable-pip-version-check -r tests/browser/requirements.txt
cargo build -q -p mancard-cli
BIN=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/debug/mancard
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
# Selenium must not fetch a driver: the Debian one is used (and no telemetry)
export SE_OFFLINE=true SE_AVOID_STATS=true
"$VENV/bin/python" tests/browser/topup_in_browser.py "$BIN" "$WORK"
