#!/usr/bin/env bash
# Model-checks settlement v2 with spin (model/settlement.pml; what it covers: model/README.md).
#
# The model (with -DWRITE_AHEAD -DSTRICT_GATE: the validator's write-ahead journal, and no charge
# without an opened gate) must pass an exhaustive search (errors: 0, the whole state space, no
# memory or depth limit hit) for 3 tap attempts (every interleaving) and for 4 (reduced), and
# every deliberately broken variant must make spin find a counterexample against the property
# it breaks. One line per run. Build artifacts (pan.c, pan, trails) go to a temporary
# directory, removed at exit unless MODEL_CHECK_KEEP=1.
#
# Environment: MODEL_CHECK_MEM_MB (pan's memory limit, default 4096),
# MODEL_CHECK_TIMEOUT (seconds per search, default 600), MODEL_CHECK_KEEP=1 (keep artifacts).
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL="$(pwd)/model/settlement.pml"
MEM_MB=${MODEL_CHECK_MEM_MB:-4096}
TIMEOUT=${MODEL_CHECK_TIMEOUT:-600}
DEPTH=10000

die() {
  echo "model-check: $*" >&2
  exit 1
}

command -v spin >/dev/null 2>&1 || die "spin is not installed (Debian: apt-get install spin)"
command -v gcc >/dev/null 2>&1 || die "gcc is not installed"
[ -f "$MODEL" ] || die "$MODEL is missing"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/mancard-model.XXXXXX")
if [ "${MODEL_CHECK_KEEP:-0}" = 1 ]; then
  echo "model-check: artifacts kept in $WORK"
else
  trap 'rm -rf "$WORK"' EXIT
fi

FAILED=0
START=$SECONDS
echo "model-check: $(spin -V | head -n 1); exhaustive search (gcc -DSAFETY, no bitstate, no compression)"

# run NAME EXPECT GCC_OPT SPIN_DEFINES...
#   EXPECT is "pass" (errors: 0 over the whole state space) or the name of the property the
#   broken variant must violate (the assertion names its property, see settlement.pml).
run() {
  local name=$1 expect=$2 opt=$3
  shift 3
  local dir="$WORK/$name"
  mkdir -p "$dir"
  cp "$MODEL" "$dir/settlement.pml"
  if ! (cd "$dir" && spin "$@" -a settlement.pml >spin.log 2>&1); then
    echo "FAIL  $name: spin could not generate the verifier:"
    sed 's/^/      /' "$dir/spin.log"
    FAILED=1
    return
  fi
  if ! (cd "$dir" && gcc "$opt" -w -DSAFETY -DMEMLIM="$MEM_MB" -o pan pan.c >gcc.log 2>&1); then
    echo "FAIL  $name: the verifier did not compile:"
    sed 's/^/      /' "$dir/gcc.log" | head -n 20
    FAILED=1
    return
  fi
  local status=0
  (cd "$dir" && timeout "$TIMEOUT" ./pan -m"$DEPTH" >pan.log 2>&1) || status=$?
  local log="$dir/pan.log"
  local errors states depth secs mem violated
  errors=$(sed -n 's/.*errors: \([0-9][0-9]*\).*/\1/p' "$log" | tail -n 1)
  states=$(sed -n 's/^ *\([0-9.e+]*\) states, stored.*/\1/p' "$log" | tail -n 1)
  depth=$(sed -n 's/.*depth reached \([0-9][0-9]*\),.*/\1/p' "$log" | tail -n 1)
  secs=$(sed -n 's/^pan: elapsed time \([0-9.e+]*\) seconds.*/\1/p' "$log" | tail -n 1)
  mem=$(sed -n 's/^ *\([0-9.]*\)[[:space:]]*total actual memory usage.*/\1/p' "$log" | tail -n 1)
  violated=$(sed -n 's/^pan:[0-9]*: assertion violated (\{1,\}\([a-z_]*\)&&.*/\1/p' "$log" | head -n 1)
  local figures="states ${states:-?}  depth ${depth:-?}  time ${secs:-?} s  memory ${mem:-?} MB"

  local problem=""
  if [ "$status" -eq 124 ]; then
    problem="timed out after ${TIMEOUT} s"
  elif [ -z "$errors" ]; then
    problem="pan printed no result (exit $status)"
  elif grep -q 'out of memory\|reached -DMEMLIM bound' "$log"; then
    problem="ran out of memory (limit ${MEM_MB} MB)"
  elif grep -q 'max search depth too small' "$log" || [ "${depth:-0}" -ge "$DEPTH" ]; then
    problem="max search depth ${DEPTH} too small"
  elif ! grep -q 'Full statespace search' "$log"; then
    problem="not a full state-space search"
  elif [ "$expect" = pass ]; then
    if [ "$errors" != 0 ]; then
      problem="$errors error(s): $(grep -m 1 'violated\|invalid end state' "$log" | cut -c 1-160)"
    elif grep -q 'Search not completed' "$log"; then
      problem="the search was not completed"
    fi
  else
    if [ "$errors" = 0 ]; then
      problem="the broken variant PASSED: spin found no counterexample"
    elif [ "$violated" != "$expect" ]; then
      problem="expected a counterexample to $expect, got: $(grep -m 1 'violated\|invalid end state' "$log" | cut -c 1-160)"
    fi
  fi

  if [ -n "$problem" ]; then
    printf 'FAIL  %-26s %s (%s)\n' "$name" "$problem" "$figures"
    FAILED=1
  elif [ "$expect" = pass ]; then
    printf 'ok    %-26s errors 0, complete       %s\n' "$name" "$figures"
  else
    printf 'ok    %-26s counterexample: %-24s %s\n' "$name" "$expect" "$figures"
  fi
}

# The model as built: the validator journals each challenge before it sends it (write-ahead),
# and no tap is charged unless its gate opened (the strict property, no exception for a
# validator crash mid-tap). Every run below uses these two switches (README).
BASE=(-DWRITE_AHEAD -DSTRICT_GATE)
# 2 riders x 2 validators x 3 tap attempts in all, every interleaving; then 4 tap attempts, the
# backend's deliveries reduced to one order per group of linked taps (README).
run settlement-3-taps pass -O2 "${BASE[@]}" -DNT=3
run settlement-4-taps-reduced pass -O2 "${BASE[@]}" -DNT=4 -DREDUCED
# Broken variants, 3 tap attempts, every interleaving (the search stops at the first
# counterexample: -O0 compiles faster).
run FIRST_REPORT_WINS charge_has_evidence -O0 "${BASE[@]}" -DFIRST_REPORT_WINS
run NO_TORN_RECOVERY ride_charged_once -O0 "${BASE[@]}" -DNO_TORN_RECOVERY
run NO_TORN_JOURNAL no_charge_without_gate -O0 "${BASE[@]}" -DNO_TORN_JOURNAL
run QR_WALLET_CHARGED charge_has_evidence -O0 "${BASE[@]}" -DQR_WALLET_CHARGED
run FRAUD_ON_UNSIGNED fraud_on_signed_evidence -O0 "${BASE[@]}" -DFRAUD_ON_UNSIGNED
run LOG_DERIVED_COUNTER counter_never_reused -O0 "${BASE[@]}" -DLOG_DERIVED_COUNTER
# Without the write-ahead, a validator that crashes after sending its challenge keeps no trace
# of it, and the wallet's report of the tap is charged although the gate never opened.
run NO_WRITE_AHEAD no_charge_without_gate -O0 -DSTRICT_GATE

if [ "$FAILED" -ne 0 ]; then
  die "FAILED ($((SECONDS - START)) s)"
fi
echo "model-check: ok ($((SECONDS - START)) s)"
