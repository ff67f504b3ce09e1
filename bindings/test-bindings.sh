#!/usr/bin/env bash
# Binding tests: Kotlin on a real JVM (JNA, as Android loads the library) and Python, against
# the real backend (`mancard backend serve --sandbox`) and the real validator through pcscd +
# vsmartcard's vpcd (registered at the backend, which issues its validator certificate: the
# phone answers no other reader). Also fails when the committed bindings differ from freshly
# generated ones.
#
# Installs what it needs on a fresh Debian machine (idempotent): the Kotlin compiler
# (npm `kotlin-compiler@2.4.20` into .tools/, which also ships kotlinx-coroutines and
# kotlin-test-junit), JNA (Debian libjna-java), JUnit 4 (Debian junit4), pytest (pip), and for
# the Android app's Robolectric tests Maven, aapt and the framework's resources (Debian), which
# fetch Robolectric, Android 15's android-all and Kotlin from Maven Central (cached in ~/.m2).
# pcscd with the virtual reader is started by scripts/pcsc-up.sh (run here if needed).
#
# Prints "N passed, M failed" per suite and a total; exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
KOTLIN_VERSION=2.4.20
TOOLS="$ROOT/.tools"
KC="$TOOLS/kotlin-compiler-$KOTLIN_VERSION"
BUILD="$ROOT/target/bindings-test"
started=$SECONDS
# Which suites run: all three by default; e.g. MANCARD_BINDINGS_SUITES=android while working on
# the app (the builds, the freshness check, the backend and the validator always run).
SUITES=${MANCARD_BINDINGS_SUITES:-kotlin android python}
want() { [[ " $SUITES " == *" $1 "* ]]; }

step() { printf '\n--- %s (%s)\n' "$1" "$(date -u +%H:%M:%S)"; }
sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

ensure_apt() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]}"
    sudo_if_needed apt-get update -qq
    sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

step "tools (JDK, JNA, JUnit 4, Kotlin $KOTLIN_VERSION, pytest, pcscd)"
command -v java >/dev/null || ensure_apt openjdk-17-jdk-headless
command -v npm >/dev/null || ensure_apt npm
ensure_apt libjna-java junit4
if [ ! -x "$KC/bin/kotlinc-jvm" ]; then
  mkdir -p "$TOOLS"
  (cd "$TOOLS" && npm pack --silent "kotlin-compiler@$KOTLIN_VERSION" >/dev/null)
  rm -rf "$KC.tmp" && mkdir -p "$KC.tmp"
  tar xzf "$TOOLS/kotlin-compiler-$KOTLIN_VERSION.tgz" -C "$KC.tmp"
  mv "$KC.tmp/package" "$KC" && rm -rf "$KC.tmp" "$TOOLS/kotlin-compiler-$KOTLIN_VERSION.tgz"
  chmod +x "$KC"/bin/*
fi
if ! python3 -c 'import pytest' 2>/dev/null; then
  # pip first; a Debian system Python refuses pip installs (PEP 668): use its package then.
  python3 -m pip install --quiet pytest 2>/dev/null || ensure_apt python3-pytest
fi
[ -x scripts/pcsc-up.sh ] && scripts/pcsc-up.sh

JNA=/usr/share/java/jna.jar
JUNIT=/usr/share/java/junit4.jar
HAMCREST=/usr/share/java/hamcrest.jar
COROUTINES="$KC/lib/kotlinx-coroutines-core-jvm.jar"
STDLIB="$KC/lib/kotlin-stdlib.jar"
for j in "$JNA" "$JUNIT" "$HAMCREST" "$COROUTINES" "$STDLIB"; do
  [ -f "$j" ] || { echo "missing $j"; exit 1; }
done
# The Android app (android-demo/) builds here with Maven: aapt compiles its resources against
# Debian's framework-res.apk, Kotlin compiles against Robolectric's android-all.
ensure_apt maven aapt android-framework-res

# ---------------------------------------------------------------------------------------------
# The committed bindings are the app's API (no test hooks, no file keystore): the freshness
# check below fails the run if they are not what the phone's library (`cargo build -p mancard
# --lib`, default features) generates, a second check fails it if that library or those bindings
# export the file keystore or a test hook. The bindings compile into a jar in the background
# while cargo builds (once, cached by content). The tests need
# `debug_panic_for_tests` (and Python the file keystore: it has no platform keystore of its
# own), so they run on a second build of the library with the `test-hooks` and `file-keystore`
# features and on bindings generated from that build; the Kotlin tests use their JCA keystore.
TMP=$(mktemp -d /tmp/mancard-bindings.XXXXXX)
backend_pid=""
compile_pid=""
cleanup() { # every step runs whatever the one before it did (errexit must not skip the kill)
  if [ -n "$compile_pid" ]; then kill -- -"$compile_pid" 2>/dev/null || true; fi # its group
  if [ -n "$backend_pid" ]; then
    kill "$backend_pid" 2>/dev/null || true
    wait "$backend_pid" 2>/dev/null || true
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT
mkdir -p "$BUILD"
kt=bindings/kotlin/ir/mancard/core/mancard.kt
BJAR="$BUILD/mancard-bindings-$(sha256sum <"$kt" | cut -c1-16).jar"
TJAR="$BUILD/mancard-tests.jar"
rm -f "$TJAR"
step "Kotlin: compiling the committed bindings in the background (once, cached)"
set -m # job control: the background job gets its own process group (killed as a whole)
(
  set -e
  if [ ! -f "$BJAR" ]; then
    rm -f "$BUILD"/mancard-bindings-*.jar
    "$KC/bin/kotlinc-jvm" -nowarn -cp "$JNA:$COROUTINES" "$kt" -d "$BJAR.tmp.jar"
    mv "$BJAR.tmp.jar" "$BJAR"
  fi
) >"$TMP/kotlinc.log" 2>&1 &
compile_pid=$!
set +m

step "build the CLI and uniffi-bindgen (cargo build -p mancard-cli -p uniffi-bindgen)"
cargo build --quiet -p mancard-cli -p uniffi-bindgen

# Each library is built on its own (cargo unifies features within one build: with the CLI, which
# needs the file keystore, the wallet library would get it too) and copied aside at once.
step "the phone's library (cargo build -p mancard --lib: default features, what cargo-ndk builds)"
cargo build --quiet -p mancard --lib
mkdir -p "$TMP/phone-lib" "$TMP/test-lib"
cp target/debug/libmancard.so "$TMP/phone-lib/libmancard.so"

step "committed bindings are up to date"
fresh=$(mktemp -d)
SKIP_BUILD=1 LIB="$TMP/phone-lib/libmancard.so" bindings/generate.sh "$fresh" >/dev/null
stale=0
for f in kotlin/ir/mancard/core/mancard.kt swift/ManCardCore.swift swift/ManCardCoreFFI.h \
         swift/ManCardCoreFFI.modulemap python/mancard.py; do
  if ! cmp -s "$fresh/$f" "bindings/$f"; then
    echo "STALE: bindings/$f differs from the generated one (run bindings/generate.sh)"
    diff -u "bindings/$f" "$fresh/$f" | head -20 || true
    stale=1
  fi
done
rm -rf "$fresh"
[ "$stale" -eq 0 ] || { echo "0 passed, 1 failed"; exit 1; }
echo "bindings match the library"

step "test build: the library with its test hooks and the file keystore, and bindings generated from it"
cargo build --quiet -p mancard --lib --features test-hooks,file-keystore
cp target/debug/libmancard.so "$TMP/test-lib/libmancard.so"
TB="$TMP/test-bindings"
SKIP_BUILD=1 ALLOW_FILE_KEYSTORE=1 LIB="$TMP/test-lib/libmancard.so" bindings/generate.sh "$TB" >/dev/null
cp "$TMP/test-lib/libmancard.so" "$TB/python/libmancard.so"

step "the phone's library and the committed bindings have no file keystore and no test hooks"
# The file keystore keeps its keys in plain files (docs/keys.md): an app must pass its
# hardware-backed keystore. The same check against the test build shows that it can fail.
exports() { # the library's exported symbols (nm), or its bytes when nm is missing
  if command -v nm >/dev/null; then nm -D --defined-only "$1"; else cat "$1"; fi
}
leaks=0
# (listed into files first: `grep -q` on a pipe stops reading early, and under pipefail the
# writer's SIGPIPE would read as "not found")
exports "$TMP/phone-lib/libmancard.so" >"$TMP/phone-lib.exports"
exports "$TMP/test-lib/libmancard.so" >"$TMP/test-lib.exports"
for sym in uniffi_mancard_fn_func_open_file_keystore uniffi_mancard_fn_func_debug_panic_for_tests; do
  if grep -qa "$sym" "$TMP/phone-lib.exports"; then
    echo "LEAK: the phone's library exports $sym"; leaks=1
  fi
  grep -qa "$sym" "$TMP/test-lib.exports" \
    || { echo "the check is blind: the test library lacks $sym"; leaks=1; }
done
for name in open_file_keystore openFileKeystore FileKeystore debug_panic_for_tests debugPanicForTests; do
  for f in kotlin/ir/mancard/core/mancard.kt swift/ManCardCore.swift swift/ManCardCoreFFI.h python/mancard.py; do
    if grep -q "$name" "bindings/$f"; then echo "LEAK: bindings/$f mentions $name"; leaks=1; fi
  done
done
grep -q openFileKeystore "$TB/kotlin/ir/mancard/core/mancard.kt" \
  || { echo "the check is blind: the test bindings lack openFileKeystore"; leaks=1; }
[ "$leaks" -eq 0 ] || { echo "0 passed, 1 failed"; exit 1; }
echo "no file keystore and no test hooks in the phone's library or the committed bindings"
tkt="$TB/kotlin/ir/mancard/core/mancard.kt"
TBJAR="$BUILD/mancard-test-bindings-$(sha256sum <"$tkt" | cut -c1-16).jar"

# ---------------------------------------------------------------------------------------------
step "backend (sandbox) and validator"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# one operator (scope keys: it registers the validator); the file keeps only the token's digest
MANCARD_ADMIN_TOKEN=$(target/debug/mancard backend operator-token --name bindings-test --scope keys \
  --add-to "$TMP/operators.json" 2>/dev/null)
export MANCARD_ADMIN_TOKEN
target/debug/mancard backend serve --db "$TMP/backend.sqlite" --listen "127.0.0.1:$PORT" --sandbox \
  --operators "$TMP/operators.json" >"$TMP/backend.log" 2>&1 &
backend_pid=$!
URL="http://127.0.0.1:$PORT"
for _ in $(seq 1 100); do
  curl -fs "$URL/healthz" >/dev/null 2>&1 && break
  kill -0 "$backend_pid" 2>/dev/null || { cat "$TMP/backend.log"; exit 1; }
  sleep 0.1
done
curl -fs "$URL/healthz" >/dev/null || { echo "backend did not start"; cat "$TMP/backend.log"; exit 1; }
anchor=$(target/debug/mancard backend keys list --db "$TMP/backend.sqlite" | sed -n 's/^trust anchor[^:]*: //p')
[ -n "$anchor" ] || { echo "no trust anchor"; exit 1; }
printf '%s\n' "$anchor" >"$TMP/issuer.pub"
VDIR="$TMP/validator"
init_out=$(target/debug/mancard validator --data-dir "$VDIR" init --trust-anchor "$TMP/issuer.pub" \
  --validator-id 17 --line 1)
vpub=$(printf '%s\n' "$init_out" | sed -n '/^validator public key/{n;p;}')
[ -n "$vpub" ] || { echo "no validator public key in: $init_out"; exit 1; }
# The phone answers only a reader with an issuer-signed validator certificate: register the
# validator's key at the backend (admin API) and install the certificate it issues.
vcert=$(curl -fs -X POST "$URL/v1/admin/validators" -H "Authorization: Bearer $MANCARD_ADMIN_TOKEN" \
  -H 'Content-Type: application/json' -d "{\"validator_id\":17,\"public_key\":\"$vpub\"}" \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["certificate"])') \
  || { echo "registering validator 17 failed"; cat "$TMP/backend.log"; exit 1; }
target/debug/mancard validator --data-dir "$VDIR" install-certificate --certificate "$vcert" >/dev/null
target/debug/mancard validator --data-dir "$VDIR" sync-config --backend "$URL" >/dev/null
echo "backend $URL, validator 17 on line 1 (certified by the backend)"
mkdir -p "$TMP/work"
export MANCARD_TEST_BACKEND_URL="$URL" MANCARD_TEST_BIN="$ROOT/target/debug/mancard" \
  MANCARD_TEST_VALIDATOR_DIR="$VDIR" MANCARD_TEST_TMP="$TMP/work"

total_passed=0
total_failed=0
count() { # reads "N passed, M failed" from a log
  local line
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$1" | tail -1 || true)
  if [ -z "$line" ]; then total_failed=$((total_failed + 1)); return; fi
  total_passed=$((total_passed + ${line%% passed*}))
  local f=${line#*, }; total_failed=$((total_failed + ${f%% failed}))
}

# ---------------------------------------------------------------------------------------------
if want kotlin; then
step "Kotlin: waiting for the compiler, then the test bindings (once, cached) and the tests"
compile_tests() {
  if [ ! -f "$TBJAR" ]; then
    rm -f "$BUILD"/mancard-test-bindings-*.jar
    "$KC/bin/kotlinc-jvm" -nowarn -cp "$JNA:$COROUTINES" "$tkt" -d "$TBJAR.tmp.jar" &&
      mv "$TBJAR.tmp.jar" "$TBJAR" || return 1
  fi
  "$KC/bin/kotlinc-jvm" -nowarn -cp "$TBJAR:$JNA:$COROUTINES:$JUNIT" \
    bindings/kotlin/tests/ir/mancard/core/test/*.kt bindings/kotlin/testing/ir/mancard/core/test/*.kt \
    -d "$TJAR"
}
if ! wait "$compile_pid" || [ ! -f "$BJAR" ] || ! compile_tests >>"$TMP/kotlinc.log" 2>&1 \
  || [ ! -f "$TJAR" ]; then
  compile_pid=""
  cat "$TMP/kotlinc.log"
  echo "Kotlin compilation failed"
  total_failed=$((total_failed + 1))
else
  compile_pid=""
  step "Kotlin: run (JUnit 4 on the JVM, JNA loads the test build of libmancard.so)"
  set +e
  # RUST_BACKTRACE=0: the panics the tests provoke on purpose print one line, not a backtrace.
  RUST_BACKTRACE=0 java -Djna.library.path="$TMP/test-lib" \
    -cp "$TJAR:$TBJAR:$JNA:$COROUTINES:$STDLIB:$JUNIT:$HAMCREST" \
    ir.mancard.core.test.RunTestsKt 2>&1 | tee "$TMP/kotlin.log"
  set -e
  count "$TMP/kotlin.log"

fi

fi
# ---------------------------------------------------------------------------------------------
if want android; then
step "Android app: Robolectric on the JVM (every screen, the HCE service, the real core via JNA)"
# The phone's library (default features) is what the app loads; the tests drive it against the
# backend and validator above and write android-demo/screenshots/*.png.
rm -rf android-demo/target/surefire-reports
set +e
(cd android-demo && MANCARD_LIB_DIR="$TMP/phone-lib" mvn -B -q test) >"$TMP/android.log" 2>&1
android_rc=$?
set -e
python3 - "$android_rc" <<'PY' | tee -a "$TMP/android.log"
import glob, sys, xml.etree.ElementTree as ET
passed = failed = 0
for f in glob.glob("android-demo/target/surefire-reports/TEST-*.xml"):
    for case in ET.parse(f).getroot().iter("testcase"):
        bad = case.find("failure") is not None or case.find("error") is not None
        failed += bad
        passed += not bad and case.find("skipped") is None
        print(("FAIL " if bad else "ok   ") + case.get("classname", "") + "." + case.get("name", ""))
if sys.argv[1] != "0" and failed == 0:
    failed = 1  # the build itself failed (compilation, resources, a crash)
print(f"{passed} passed, {failed} failed")
PY
if ! grep -q ' 0 failed$' "$TMP/android.log"; then
  grep -v '^ok   ' "$TMP/android.log" | tail -80
fi
count "$TMP/android.log"

fi
# ---------------------------------------------------------------------------------------------
if want python; then
step "Python: pytest"
set +e
(cd bindings/python && RUST_BACKTRACE=0 MANCARD_TEST_PYTHON_BINDINGS="$TB/python" python3 -m pytest -q -p no:cacheprovider tests 2>&1) | tee "$TMP/python.log"
py_status=${PIPESTATUS[0]}
set -e
py_passed=$(grep -oE '[0-9]+ passed' "$TMP/python.log" | tail -1 | cut -d' ' -f1 || true)
py_failed=$( (grep -oE '[0-9]+ (failed|error|errors)\b' "$TMP/python.log" || true) | awk '{s+=$1} END {print s+0}')
py_passed=${py_passed:-0}
if [ "$py_status" -ne 0 ] && [ "$py_failed" -eq 0 ]; then py_failed=1; fi
echo "$py_passed passed, $py_failed failed"
total_passed=$((total_passed + py_passed))
total_failed=$((total_failed + py_failed))
fi

step "summary ($((SECONDS - started)) s)"
echo "$total_passed passed, $total_failed failed"
[ "$total_failed" -eq 0 ] && [ "$total_passed" -gt 0 ]
