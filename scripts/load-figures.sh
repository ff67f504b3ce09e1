#!/usr/bin/env bash
# The figures of docs/perf.md §8 in one run: the same `mancard load` against one backend on
# SQLite, one on PostgreSQL and three processes on one PostgreSQL database, one after the
# other on this machine; a Markdown table on stdout (the JSON of each run is kept in the
# work directory, printed at the end).
#
#   scripts/load-figures.sh [--quick] [--peer BIN] [-- mancard load arguments, instead of the defaults]
#
# FIGURES_ONLY=name,name runs only those rows (sqlite-1, postgres-1, postgres-3,
# postgres-1-shared, postgres-1-pinned, postgres-3-pinned, peer-postgres-1, peer-postgres-3,
# peer-postgres-1-pinned).
#
# --peer BIN also runs the PostgreSQL configurations with one instance, three processes and
# one pinned instance with another build of `mancard` (e.g. the commit before a change), each
# just before this build's, as extra rows.
#
# Builds the release binary, starts a throwaway PostgreSQL (scripts/postgres.sh), and runs
# each backend with the flags the load test needs (docs/perf.md §8): sandbox, a shared
# sandbox payment gateway, per-address limits off (every simulated rider comes from one
# address), a large offline allowance. Every configuration gets the same load; the raw
# P-256 verify rate on all cores is measured by each run before and after its timed phase.
# Exit 1 if any run's books do not agree or any answer was a 5xx.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

LOAD=(--validators 20 --wallets 1000 --taps-per-batch 100 --presealed 90 --duration 30s)
QUICK=""
if [ "${1:-}" = "--quick" ]; then
  LOAD=(--validators 4 --wallets 20 --taps-per-batch 10 --presealed 2 --duration 3s)
  QUICK=1
  shift
fi
PEER=""
if [ "${1:-}" = "--peer" ]; then
  PEER=$(realpath "$2")
  shift 2
fi
if [ "${1:-}" = "--" ]; then
  shift
  [ $# -gt 0 ] && LOAD=("$@")
fi

log() { printf 'load-figures: %s\n' "$*" >&2; }

cargo build --release -p mancard-cli --quiet
BIN=$ROOT/target/release/mancard
WORK=$(mktemp -d /tmp/mancard-figures.XXXXXX)
chmod 755 "$WORK" # the PostgreSQL server runs as another user
PG_DIR=$WORK/pg
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  scripts/postgres.sh stop "$PG_DIR" >/dev/null 2>&1 || true
  cp "$PG_DIR/log" "$WORK/postgres.log" 2>/dev/null || true
  rm -rf "$PG_DIR"
}
trap cleanup EXIT
PG_URL=$(scripts/postgres.sh start "$PG_DIR" | tail -n 1)
# FIGURES_PG_STATS=1: the server keeps pg_stat_statements, and each PostgreSQL run leaves its
# statements by total time in $WORK/NAME.statements.txt (where the server's time goes)
# FIGURES_PG_STATS=explain: also a sample of the plans, nested statements (the guard triggers')
# included, with their actual rows and times, in the server's log ($WORK/postgres.log)
if [ -n "${FIGURES_PG_STATS:-}" ]; then
  if [ "$FIGURES_PG_STATS" = explain ]; then
    psql "$PG_URL" -qc "ALTER SYSTEM SET shared_preload_libraries = pg_stat_statements, auto_explain"
  else
    psql "$PG_URL" -qc "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'"
  fi
  scripts/postgres.sh stop "$PG_DIR" >/dev/null
  PG_URL=$(scripts/postgres.sh start "$PG_DIR" | tail -n 1)
  psql "$PG_URL" -qc "ALTER SYSTEM SET pg_stat_statements.track_planning = on"
  # the statements the guard triggers run too (schema version 14), each under its own text
  psql "$PG_URL" -qc "ALTER SYSTEM SET pg_stat_statements.track = 'all'"
  if [ "$FIGURES_PG_STATS" = explain ]; then
    psql "$PG_URL" -qc "ALTER SYSTEM SET auto_explain.log_min_duration = 0"
    psql "$PG_URL" -qc "ALTER SYSTEM SET auto_explain.sample_rate = 0.002"
    psql "$PG_URL" -qc "ALTER SYSTEM SET auto_explain.log_nested_statements = on"
    psql "$PG_URL" -qc "ALTER SYSTEM SET auto_explain.log_analyze = on"
  fi
  psql "$PG_URL" -qAtc "SELECT pg_reload_conf()" >/dev/null
fi

# The line "… listening on URL" of a process's log, once it is there.
url_of() {
  for _ in $(seq 1 200); do
    if grep -q "listening on " "$1" 2>/dev/null; then
      grep -o "listening on .*" "$1" | head -n 1 | sed 's/listening on //'
      return 0
    fi
    sleep 0.1
  done
  log "no 'listening on' line in $1:"
  tail -n 20 "$1" >&2
  return 1
}

# Before each PostgreSQL run: the earlier runs' databases vacuumed and analyzed, and a
# checkpoint, so that their autovacuum and the checkpoint their WAL calls for land in none of
# the runs after them. Without it the second run on the server paid for the first: one build
# measured in both slots ingested 9-18 % less in the second, and its PostgreSQL CPU a tap was
# 20 % higher (perf.md §8, "Isolation and write turns, measured again").
settle_pg() {
  local d
  for d in $(psql "$PG_URL" -qAtc "SELECT datname FROM pg_database WHERE datname LIKE 'figures_%'"); do
    psql "${PG_URL%/*}/$d" -qc "VACUUM ANALYZE" >/dev/null
  done
  psql "$PG_URL" -qc "CHECKPOINT"
}

# The rows named *-pinned split the cores: the backend on the first half (BACKEND_CPUS), the
# PostgreSQL server, the generator and the sandbox gateway on the rest (OTHER_CPUS), as a
# deployment with the database on a machine of its own. Their peer is the verify rate of the
# backend's cores alone (measured by the generator on as many cores of the other half).
NCORES=$(nproc)
HALF=$((NCORES / 2))
BACKEND_CPUS="0-$((HALF - 1))"
OTHER_CPUS="$HALF-$((HALF * 2 - 1))"
ALL_CPUS="0-$((NCORES - 1))"
# pin_pg CPUS: the server's processes, and those it forks from now on
pin_pg() {
  local pm p
  pm=$(head -n 1 "$PG_DIR/data/postmaster.pid")
  for p in "$pm" $(pgrep -P "$pm"); do
    taskset -a -p -c "$1" "$p" >/dev/null
  done
}

# run NAME INSTANCES sqlite|pg [BIN [LOAD ARGS…]]: one configuration; its JSON in
# $WORK/NAME.json.
run() {
  local name=$1 n=$2 kind=$3 dir=$WORK/$1 db
  if [ -n "${FIGURES_ONLY:-}" ] && [[ ",$FIGURES_ONLY," != *",$name,"* ]]; then
    return 0
  fi
  local BIN=${4:-$BIN}
  local extra=("${@:5}") cpu=()
  # taskset prefixes of the pinned rows (empty otherwise), and their backend's money writes
  # at once: its cores would leave the database's idle (perf.md §8), so twice all the cores
  local on_backend=() on_other=() serve_extra=()
  if [[ $name == *-pinned ]]; then
    if [ "$HALF" -lt 1 ]; then
      log "$name: needs 2 cores or more; skipped"
      return 0
    fi
    on_backend=(taskset -c "$BACKEND_CPUS")
    on_other=(taskset -c "$OTHER_CPUS")
    serve_extra=(--db-money-writes $((2 * NCORES)))
  fi
  mkdir -p "$dir"
  local token
  token=$("$BIN" backend operator-token --name load --scope keys --scope read \
    --add-to "$dir/ops.json" 2>/dev/null)
  "${on_other[@]}" "$BIN" gateway-sandbox serve --listen 127.0.0.1:0 >"$dir/gateway.log" 2>&1 &
  local gw_pid=$!
  PIDS+=("$gw_pid")
  local gw
  gw=$(url_of "$dir/gateway.log")
  if [ "$kind" = pg ]; then
    settle_pg
    local dbname="figures_${name//-/_}"
    psql "$PG_URL" -qc "CREATE DATABASE $dbname TEMPLATE template0 ENCODING 'UTF8' \
      LC_COLLATE 'C' LC_CTYPE 'C'"
    db=${PG_URL%/*}/$dbname
    if [ -n "${FIGURES_PG_STATS:-}" ]; then
      psql "$db" -qc "CREATE EXTENSION pg_stat_statements"
      psql "$db" -qAtc "SELECT pg_stat_statements_reset()" >/dev/null
    fi
  else
    db=$dir/backend.sqlite
  fi
  local urls=() pids=()
  for i in $(seq 1 "$n"); do
    RUST_LOG=${FIGURES_LOG:-warn} "${on_backend[@]}" "$BIN" backend serve --sandbox --listen 127.0.0.1:0 --db "$db" \
      --keys "$dir/issuer-keys.json" --sandbox-gateway-url "$gw" --operators "$dir/ops.json" \
      --max-offline-amount 50000000 --max-in-flight-per-address off \
      --max-connections-per-address off --max-uploads-per-address off \
      --rate-limit otp_per_address=off --rate-limit otp_global=off \
      --rate-limit session_per_address=off --rate-limit sync_per_account=off \
      --rate-limit credential_per_account=off "${serve_extra[@]}" 2>"$dir/backend-$i.log" &
    pids+=($!)
    PIDS+=($!)
    cpu+=(--cpu-of "backend-$i=$!")
    urls+=("$(url_of "$dir/backend-$i.log")")
  done
  # the server's CPU too (its connections are the postmaster's children)
  [ "$kind" = pg ] && cpu+=(--cpu-of "postgres=$(head -n 1 "$PG_DIR/data/postmaster.pid")")
  log "$name: $n instance(s) on $kind: ${LOAD[*]}"
  local joined
  joined=$(IFS=,; echo "${urls[*]}")
  local code=0
  # the generator's own wallets and journals (not under test): in memory where there is
  # /dev/shm, so presealing is not bound by the journals' fsyncs
  local gen_tmp=$dir
  [ -d /dev/shm ] && [ -w /dev/shm ] && gen_tmp=/dev/shm
  [ "$kind" = pg ] && [ ${#on_other[@]} -gt 0 ] && pin_pg "$OTHER_CPUS"
  TMPDIR=$gen_tmp MANCARD_OPERATOR_TOKEN=$token "${on_other[@]}" "$BIN" load --backend "$joined" "${LOAD[@]}" "${extra[@]}" "${cpu[@]}" --json \
    >"$WORK/$name.json" 2>"$dir/load.log" || code=$?
  kill "${pids[@]}" "$gw_pid" 2>/dev/null || true
  wait "${pids[@]}" "$gw_pid" 2>/dev/null || true
  [ "$kind" = pg ] && [ ${#on_other[@]} -gt 0 ] && pin_pg "$ALL_CPUS"
  if [ "$kind" = pg ] && [ -n "${FIGURES_PG_STATS:-}" ]; then
    psql "$db" -qc "SELECT calls, round(total_exec_time) AS exec_ms, round(total_plan_time) AS plan_ms,
        rows, round(shared_blks_hit / greatest(calls, 1)) AS hits_a_call, toplevel AS top,
        left(regexp_replace(query, '\s+', ' ', 'g'), 160) AS query
      FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
      ORDER BY total_exec_time + total_plan_time DESC LIMIT 60" >"$WORK/$name.statements.txt"
  fi
  if [ ! -s "$WORK/$name.json" ]; then
    log "$name: no figures (exit $code):"
    tail -n 20 "$dir/load.log" >&2
    return 1
  fi
  return 0
}

STARTED=$(date -u '+%Y-%m-%d %H:%M UTC')
FAILED=0
ROWS=("sqlite-1=SQLite, 1 instance" "postgres-1=PostgreSQL, 1 instance"
  "postgres-3=PostgreSQL, 3 processes" "postgres-1-shared=PostgreSQL, 1 instance, shared riders")
run sqlite-1 1 sqlite || FAILED=1
if [ -n "$PEER" ]; then
  ROWS+=("peer-postgres-1=PostgreSQL, 1 instance (peer build)"
    "peer-postgres-3=PostgreSQL, 3 processes (peer build)")
  run peer-postgres-1 1 pg "$PEER" || FAILED=1
fi
run postgres-1 1 pg || FAILED=1
if [ -n "$PEER" ]; then
  run peer-postgres-3 3 pg "$PEER" || FAILED=1
fi
run postgres-3 3 pg || FAILED=1
run postgres-1-shared 1 pg "$BIN" --shared-riders || FAILED=1
if [ "$HALF" -ge 1 ]; then
  ROWS+=("postgres-1-pinned=PostgreSQL, 1 instance, on ${HALF} of ${NCORES} cores, PostgreSQL and the generator on the others (peer: the backend's cores)"
    "postgres-3-pinned=PostgreSQL, 3 processes, on ${HALF} of ${NCORES} cores, PostgreSQL and the generator on the others (peer: the backend's cores)")
fi
if [ -n "$PEER" ] && [ "$HALF" -ge 1 ]; then
  ROWS+=("peer-postgres-1-pinned=PostgreSQL, 1 instance, on ${HALF} of ${NCORES} cores, PostgreSQL and the generator on the others (peer build)")
  run peer-postgres-1-pinned 1 pg "$PEER" || FAILED=1
fi
run postgres-1-pinned 1 pg || FAILED=1
run postgres-3-pinned 3 pg || FAILED=1
# PostgreSQL's floor, the peer of its CPU a tap under load: what storing a tap's rows costs it
# with nothing else running, on the database the 1-instance run left (scripts/pg-floor.sql);
# after every run, so that its writes' vacuum and checkpoint land in none of them. Not with
# --quick: that run leaves fewer than the 100 rows a table it copies.
if [ -z "$QUICK" ] && [ -s "$WORK/postgres-1.json" ]; then
  log "PostgreSQL's floor, on the 1-instance run's database"
  psql "${PG_URL%/*}/figures_postgres_1" -v ON_ERROR_STOP=1 -v hz="$(getconf CLK_TCK)" -qAt \
    -f scripts/pg-floor.sql >"$WORK/postgres-1.floor.txt" || FAILED=1
fi

python3 - "$WORK" "$STARTED" "$NCORES" "$HALF" "${LOAD[*]}" "${ROWS[@]}" <<'EOF' || FAILED=1
import json, os, sys
work, started, cores, half, load = sys.argv[1:6]
rows = [r.split("=", 1) for r in sys.argv[6:]]
only = os.environ.get("FIGURES_ONLY")
if only:
    rows = [r for r in rows if r[0] in only.split(",")]
print(f"`scripts/load-figures.sh` — {started}, {cores} cores, `mancard load {load}`\n")
print("| backend | ingest taps/s (HTTP) | taps verified /s, all cores (2 verifies each) "
      "| ratio (goal 0.5) | backend alone: 2 verifies ÷ its CPU a tap "
      "| CPU µs a tap: backend · PostgreSQL · generator · 2 verifies "
      "| upload p50 · p99 ms | sync p50 · p95 · p99 ms | top-up create p99 ms | requests/s "
      "| 5xx | books |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
bad = False
for name, label in rows:
    path = os.path.join(work, name + ".json")
    if not os.path.exists(path) or os.path.getsize(path) == 0:
        print(f"| {label} | — | — | — | — | — | — | — | — | — | — | no run |")
        bad = True
        continue
    d = json.load(open(path))
    k = {x["name"]: x for x in d["kinds"]}
    up, sy, tc = k.get("upload", {}), k.get("sync", {}), k.get("topup: create", {})
    ing, total = d["ingest"], d["total"]
    ok = d["books"]["ok"] and total["status_5xx"] == 0 and not d["problems"]
    cpu = {}
    for c in ing.get("cpu", []):
        key = c["name"].split("-")[0]
        cpu[key] = cpu.get(key, 0) + c["us_per_tap"]
    # two verifies a tap on one core: cores / (verifies a second on all of them); the
    # generator measured them on the cores it may run on (fewer in the pinned rows)
    verify_cores = ing.get("verify_cores", int(cores))
    verify_us = 2 * verify_cores * 1e6 / max(ing["verifies_per_second_all_cores"], 1)
    # the peer: taps verified a second on all cores, or on the backend's in the pinned rows
    peer_cores = int(half) if name.endswith("-pinned") else int(cores)
    peer = peer_cores * 1e6 / verify_us
    cpu_cell = " · ".join(f"{cpu[k]:,.0f}" if k in cpu else "—"
                          for k in ("backend", "postgres", "generator")) + f" · {verify_us:,.0f}"
    # what the backend process would ingest on cores of its own, against verifying alone:
    # the share of its CPU a tap that is the tap's two verifies
    alone = f"{verify_us / cpu['backend']:.2f}" if cpu.get("backend") else "—"
    bad |= not ok
    print(f"| {label} | {ing['taps_per_second']:,.0f} | {peer:,.0f} "
          f"| {ing['taps_per_second'] / max(peer, 1):.3f} | {alone} "
          f"| {cpu_cell} | {up.get('p50_ms','—')} · {up.get('p99_ms','—')} "
          f"| {sy.get('p50_ms','—')} · {sy.get('p95_ms','—')} · {sy.get('p99_ms','—')} "
          f"| {tc.get('p99_ms','—')} | {total['per_second']} | {total['status_5xx']} "
          f"| {'agree' if ok else 'PROBLEMS: ' + '; '.join(d['problems'])} |")
floor = os.path.join(work, "postgres-1.floor.txt")
if os.path.exists(floor) and os.path.getsize(floor) > 0:
    f = dict(line.strip().split("|") for line in open(floor) if "|" in line)
    d = json.load(open(os.path.join(work, "postgres-1.json")))
    pg = sum(c["us_per_tap"] for c in d["ingest"].get("cpu", []) if c["name"] == "postgres")
    print(f"\nPostgreSQL's floor (scripts/pg-floor.sql, after the runs, on the 1-instance run's database, "
          f"one session alone): {f.get('all_rows', '—')} µs of CPU to store a settled tap's rows, "
          f"{f.get('tap_row', '—')} µs for the tap's row alone; under the load above it spent "
          f"{pg:,.0f} µs a tap ({pg / max(float(f.get('all_rows', 0) or 0), 1):.1f} times the floor).")
sys.exit(1 if bad else 0)
EOF
log "the JSON of each run: $WORK/*.json"
exit $FAILED
