#!/usr/bin/env bash
# Runs every ManCard test on a fresh Debian machine: installs what the tests need
# (system packages, pcscd + vsmartcard, PostgreSQL, cargo-fuzz, the Kotlin compiler), starts
# the services, then runs format and lint checks, the Rust test suites (the backend's on
# SQLite and again on PostgreSQL), a fuzz smoke run and the binding tests. Exits non-zero on
# the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
export CARGO_TERM_COLOR=never
# A run builds once from scratch: no incremental caches (they would double the disk it needs).
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}

step() { printf '\n=== %s (%s)\n' "$1" "$(date -u +%H:%M:%S)"; }

# Install Debian packages that are missing (apt-get update only when something is).
ensure_apt() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    # through `env`: sudo would drop a plain variable assignment
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

step "system packages"
echo "disk: $(df -h . | awk 'NR==2 {print $4}') free"
# zbar-tools and ZXing (Java, with a headless JRE): the QR readers the pass test decodes with.
# spin: the model checker of the settlement model (scripts/model-check.sh).
ensure_apt pcscd vsmartcard-vpcd pcsc-tools libpcsclite-dev pkg-config python3 \
  zbar-tools libzxing-javase-java libzxing-core-java libjcommander-java default-jre-headless \
  spin openssl

if [ -x scripts/pcsc-up.sh ]; then
  step "pcscd + vsmartcard virtual reader"
  scripts/pcsc-up.sh
  export MANCARD_REQUIRE_PCSC=1
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "architecture rules (ARCHITECTURE.md)"
python3 scripts/check-architecture.py

step "cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --quiet -- -D warnings

step "PostgreSQL: a throwaway server on a loopback port"
# scripts/postgres.sh installs Debian's postgresql when it is missing and runs the server as
# a non-root user; every test harness makes its own database in it. With
# MANCARD_REQUIRE_POSTGRES=1 a test that needs it fails, never skips, when it is missing.
PG_DIR=$(mktemp -d /tmp/mancard-pg.XXXXXX)
trap 'scripts/postgres.sh stop "$PG_DIR" >/dev/null 2>&1 || true; rm -rf "$PG_DIR"' EXIT
MANCARD_TEST_PG_URL=$(scripts/postgres.sh start "$PG_DIR" | tail -n 1)
# the CA of the server's TLS certificate: the TLS test connects with sslmode=verify-full
MANCARD_TEST_PG_CA=$PG_DIR/ca.crt
export MANCARD_TEST_PG_URL MANCARD_TEST_PG_CA MANCARD_REQUIRE_POSTGRES=1

step "cargo test (workspace)"
TEST_LOG=$(mktemp)
cargo test --workspace 2>&1 | tee "$TEST_LOG"
grep -q '^test result: ok' "$TEST_LOG"
PASSED=$(awk '/^test result: ok\./ {n += $4} END {print n + 0}' "$TEST_LOG")
rm -f "$TEST_LOG"

step "the backend suite again, on PostgreSQL"
PG_LOG=$(mktemp)
MANCARD_TEST_DB=postgres cargo test -p mancard-backend 2>&1 | tee "$PG_LOG"
grep -q '^test result: ok' "$PG_LOG"
PASSED=$((PASSED + $(awk '/^test result: ok\./ {n += $4} END {print n + 0}' "$PG_LOG")))
rm -f "$PG_LOG"

if [ -x protocol/fuzz/smoke.sh ]; then
  step "fuzz smoke run (every decoder)"
  protocol/fuzz/smoke.sh
fi

step "API contract: OpenAPI 3.1 validation + schemathesis on a live sandbox backend"
scripts/api-check.sh

step "model check (spin)"
scripts/model-check.sh

if [ -x bindings/test-bindings.sh ]; then
  step "Kotlin (JVM + JNA), the Android app (Robolectric) and Python binding tests"
  BINDINGS_LOG=$(mktemp)
  bindings/test-bindings.sh 2>&1 | tee "$BINDINGS_LOG"
  BINDINGS=$(grep -E '^[0-9]+ passed, 0 failed$' "$BINDINGS_LOG" | tail -n 1 | cut -d' ' -f1)
  PASSED=$((PASSED + ${BINDINGS:-0}))
  rm -f "$BINDINGS_LOG"
fi

step "browser test: a top-up paid, cancelled and abandoned in headless Chromium"
# Debian's chromium and its driver; Selenium (pinned) comes from PyPI into a venv.
ensure_apt chromium chromium-driver python3-venv
scripts/browser-test.sh
PASSED=$((PASSED + 1))

step "all tests passed"
echo "disk: target/ holds $(du -sh target 2>/dev/null | cut -f1), $(df -h . | awk 'NR==2 {print $4}') free"
echo "total: $PASSED passed, 0 failed"
