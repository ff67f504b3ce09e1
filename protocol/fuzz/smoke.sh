#!/usr/bin/env bash
# Fuzz smoke run: builds every cargo-fuzz target of the protocol crate and runs each briefly,
# seeded with the committed test vectors. Long runs belong outside CI:
#   RUSTC_BOOTSTRAP=1 cargo fuzz run <target> -- -max_total_time=3600
# Env: FUZZ_TOTAL_SECS (default 150) is split evenly across the targets; FUZZ_TARGETS limits
# the targets (space-separated).
set -euo pipefail
cd "$(dirname "$0")"

# cargo-fuzz needs nightly-only flags (-Zsanitizer); RUSTC_BOOTSTRAP lets stable rustc take them.
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

targets=${FUZZ_TARGETS:-$(cargo fuzz list)}
n=$(echo "$targets" | wc -w)
total=${FUZZ_TOTAL_SECS:-150}
per=$(( total / n ))
(( per >= 1 )) || per=1

echo "== seeding corpora from ../tests/vectors"
python3 - <<'PY'
import json, os, glob, hashlib
by_type = {
    "certificate": ["certificate"], "validator_certificate": ["validator_certificate"],
    "tap_challenge": ["tap_challenge"], "tap_authorization": ["tap_authorization"],
    "boarding_pass": ["boarding_pass"], "validator_config": ["validator_config"],
    "tariff": ["tariff"], "tap_record": ["tap_record"], "tap_batch": ["tap_batch"],
    "torn_record": ["torn_record"],
    "wallet_log_entry": ["wallet_log_entry"], "select_response": ["select_response"],
    "command_apdu": ["apdu", "authorize_command"], "response_apdu": ["apdu", "authorize_response"],
    "authorize_response": ["authorize_response"],
}
def put(target, data):
    d = os.path.join("corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "vec-" + hashlib.sha1(data).hexdigest()), "wb") as f:
        f.write(data)
n = 0
for path in glob.glob("../tests/vectors/*.json"):
    for v in json.load(open(path)).get("vectors", []):
        t = v.get("type")
        if t == "authorize_command":
            # the target reads its first byte as P1, the rest as the command data
            put("authorize_command", bytes([v["p1"]]) + bytes.fromhex(v["hex"])); n += 1
        elif "hex" in v:
            data = bytes.fromhex(v["hex"])
            for target in by_type.get(t, []) + ["inspect"]:
                put(target, data); n += 1
            if "text" in v:
                put("boarding_pass_text", v["text"].encode())
        elif "text" in v:
            put("boarding_pass_text", v["text"].encode()); n += 1
        for key in ("entries", "a", "b"):  # log entries of chains and fork proofs
            for h in (v.get(key) if isinstance(v.get(key), list) else [v.get(key)]):
                if isinstance(h, str):
                    put("wallet_log_entry", bytes.fromhex(h)); n += 1
        for e in v.get("exchanges", []):  # whole taps
            put("apdu", bytes.fromhex(e["command"])); put("authorize_command", bytes.fromhex(e["command"]))
            put("apdu", bytes.fromhex(e["response"])); put("authorize_response", bytes.fromhex(e["response"])[:-2])
            n += 4
print(f"   {n} seed files")
PY

echo "== building fuzz targets"
cargo fuzz build 2>&1 | tail -n 3

echo "== running $n targets for ${per}s each"
failed=()
for t in $targets; do
    mkdir -p "corpus/$t"
    if cargo fuzz run "$t" "corpus/$t" -- -max_total_time="$per" -rss_limit_mb=2048 \
        -print_final_stats=1 >"fuzz-$t.log" 2>&1; then
        echo "   ok    $t: $(grep -E 'stat::number_of_executed_units' "fuzz-$t.log" | awk '{print $2}') runs"
        rm -f "fuzz-$t.log"
    else
        echo "   FAIL  $t (see protocol/fuzz/fuzz-$t.log and artifacts/$t/)"
        tail -n 30 "fuzz-$t.log"
        failed+=("$t")
    fi
done
if (( ${#failed[@]} )); then
    echo "fuzz smoke: ${#failed[@]} target(s) failed: ${failed[*]}"
    exit 1
fi
echo "fuzz smoke: all $n targets ran clean"
