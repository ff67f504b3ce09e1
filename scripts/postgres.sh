#!/usr/bin/env bash
# Starts and stops a throwaway PostgreSQL for tests, on a fresh Debian machine (issue #16).
#
#   scripts/postgres.sh start DIR [PORT]   initialise DIR (created if missing) and start a server on
#                                          127.0.0.1:PORT (a free loopback port when not given);
#                                          creates the database `mancard`. Prints the URL of the
#                                          database `postgres` as its only stdout line.
#   scripts/postgres.sh stop DIR           stop it (fast shutdown); no error if it is not running
#   scripts/postgres.sh createdb DIR NAME  create another database and print its URL
#
# Typical use:
#   d=$(mktemp -d); URL=$(scripts/postgres.sh start "$d" | tail -1)
#   trap 'scripts/postgres.sh stop "$d"; rm -rf "$d"' EXIT
#
# Installs Debian's `postgresql` when no initdb is under /usr/lib/postgresql/*/bin (sudo when not
# root). PostgreSQL refuses to run as root: as root the server runs as the `postgres` system user
# (DIR is handed to it, so it must be reachable by that user, e.g. under /tmp); otherwise it runs
# as the current user. Authentication is `trust` on loopback only: for tests, never for real data.
#
# Files in DIR: data/ (the cluster), log (server log), port, url (database `postgres`), ca.crt
# (the CA of the server's TLS certificate, for sslmode=verify-full&sslrootcert=DIR/ca.crt),
# url-mancard, url-NAME for each `createdb`. Logs go to stderr; stdout carries only URLs, so
# `$(scripts/postgres.sh start "$d" | tail -1)` is the URL. Different DIRs run side by side.
#
# Env (optional): POSTGRES_START_TIMEOUT seconds to wait for the server (default 60).
set -euo pipefail

# stdout is for the URL only: everything else (our logs, initdb, pg_ctl) goes to stderr.
exec 3>&1 1>&2

log() { printf 'postgres.sh: %s\n' "$*"; }
die() { log "error: $*"; exit 1; }
usage() {
  sed -n '3,9s/^# \{0,1\}//p' "$0"
  exit 2
}

# The caller's libpq settings (PGHOST, PGPORT, PGUSER, PGOPTIONS, ...) must not redirect our
# own connections or the server's: every command below names its server explicitly.
while read -r v; do unset "$v"; done < <(compgen -e | grep '^PG' || true)

TIMEOUT=${POSTGRES_START_TIMEOUT:-60}

cmd=${1:-}
DIR=${2:-}
if [ -z "$cmd" ] || [ -z "$DIR" ]; then usage; fi

# --- PostgreSQL binaries --------------------------------------------------------------------
# The newest installed major version's bin directory, or nothing (never a failure: set -e).
pg_bin() {
  { find /usr/lib/postgresql -maxdepth 3 -path '*/bin/initdb' 2>/dev/null || true; } \
    | sort -V | tail -n 1 | xargs -r dirname
}

ensure_postgres() {
  BIN=$(pg_bin)
  [ -n "$BIN" ] && return 0
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || die "PostgreSQL is not installed and there is no sudo: as root, run apt-get install postgresql"
    sudo="sudo"
  fi
  log "installing postgresql (Debian)"
  $sudo apt-get update -qq
  # Through env: sudo resets the environment, so a plain VAR=value prefix would not reach apt.
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  BIN=$(pg_bin)
  [ -n "$BIN" ] || die "apt-get installed postgresql but no initdb is under /usr/lib/postgresql/*/bin"
}

# --- who runs the server --------------------------------------------------------------------
# As root: the `postgres` system user (or, for an existing cluster, whoever owns it).
# Otherwise: the current user, who is also the cluster's superuser.
# fd 3 (our stdout) is closed for them: a server that kept it open would hold the caller's
# `$(... | tail -1)` open for as long as it runs.
RUN_AS=""
as_owner() {
  if [ -n "$RUN_AS" ]; then runuser -u "$RUN_AS" -- "$@" 3>&-; else "$@" 3>&-; fi
}

set_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    if [ -d "$DIR/data" ]; then RUN_AS=$(stat -c %U "$DIR/data"); else RUN_AS=postgres; fi
    [ "$RUN_AS" != root ] || die "$DIR/data is owned by root; PostgreSQL cannot run as root"
    id "$RUN_AS" >/dev/null 2>&1 || die "user $RUN_AS does not exist (it comes with Debian's postgresql package)"
    DBUSER=$RUN_AS
  else
    DBUSER=$(id -un)
  fi
}

url_for() { printf 'postgres://%s@127.0.0.1:%s/%s' "$DBUSER" "$PORT" "$1"; }

running() { [ -d "$DIR/data" ] && as_owner "$BIN/pg_ctl" status -D "$DIR/data" >/dev/null 2>&1; }

# --- ports ----------------------------------------------------------------------------------
port_in_use() { (exec 9<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_port() {
  if command -v python3 >/dev/null; then
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' && return 0
  fi
  local p
  for _ in $(seq 1 100); do
    p=$((20000 + RANDOM % 12000))
    port_in_use "$p" || { echo "$p"; return 0; }
  done
  die "no free loopback port found"
}

# --- commands -------------------------------------------------------------------------------
psql_q() { "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -U "$DBUSER" -d postgres -tA "$@"; }

create_db() { # NAME [if-missing]
  local name=$1
  [[ $name =~ ^[A-Za-z_][A-Za-z0-9_]{0,62}$ ]] || die "database name '$name': use letters, digits and _ (at most 63)"
  if [ "${2:-}" = if-missing ] && [ "$(psql_q -c "select 1 from pg_database where datname = '$name'")" = 1 ]; then
    :
  else
    "$BIN/createdb" -h 127.0.0.1 -p "$PORT" -U "$DBUSER" "$name" || die "could not create database $name"
  fi
  url_for "$name" >"$DIR/url-$name"
  echo >>"$DIR/url-$name"
}

server_failed() {
  log "PostgreSQL did not start; the last lines of $DIR/log:"
  tail -n 30 "$DIR/log" 2>/dev/null | sed 's/^/  | /' || true
  exit 1
}

start() {
  local want_port=${1:-} tries=1 conf_dir
  if [ -n "$want_port" ]; then
    if ! [[ $want_port =~ ^[0-9]+$ ]] || [ "$want_port" -lt 1 ] || [ "$want_port" -gt 65535 ]; then
      die "bad port '$want_port'"
    fi
  fi
  ensure_postgres
  mkdir -p "$DIR"
  DIR=$(cd "$DIR" && pwd -P)
  set_owner
  if [ -n "$RUN_AS" ] && [ ! -d "$DIR/data" ]; then
    chown "$RUN_AS": "$DIR"
    runuser -u "$RUN_AS" -- test -w "$DIR" -a -x "$DIR" \
      || die "$RUN_AS cannot reach $DIR (a parent directory is closed to it): use a directory under /tmp"
  fi
  # The server's programs start in DIR, a directory their user can enter (not root's cwd).
  cd "$DIR"

  if running; then
    PORT=$(cat "$DIR/port")
    [ -z "$want_port" ] || [ "$want_port" = "$PORT" ] || die "already running in $DIR on port $PORT, not $want_port"
    log "already running in $DIR on port $PORT"
    create_db mancard if-missing
    url_for postgres >"$DIR/url"; echo >>"$DIR/url"
    cat "$DIR/url" >&3
    return 0
  fi

  if [ ! -f "$DIR/data/PG_VERSION" ]; then
    log "initdb $DIR/data ($("$BIN/postgres" --version))"
    # --no-sync: only initdb's final flush; the server itself keeps fsync on.
    as_owner "$BIN/initdb" -D "$DIR/data" -U "$DBUSER" -A trust -E UTF8 --locale=C --no-sync >/dev/null \
      || die "initdb failed in $DIR/data"
    echo "include = 'mancard-test.conf'" | as_owner tee -a "$DIR/data/postgresql.conf" >/dev/null
  fi

  # TLS: a throwaway CA (DIR/ca.crt, for clients' sslrootcert) and a server certificate for
  # 127.0.0.1 and localhost that it signed. Plain connections keep working; a client asking
  # for sslmode=verify-full with that CA gets a verified, encrypted session.
  local ssl_conf="ssl = off"
  if command -v openssl >/dev/null; then
    if [ ! -f "$DIR/data/server.crt" ]; then
      as_owner openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
        -subj "/CN=mancard test CA" -keyout "$DIR/ca.key" -out "$DIR/ca.crt" 2>/dev/null \
        || die "openssl could not make the test CA"
      as_owner openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=localhost" \
        -keyout "$DIR/server.key" -out "$DIR/server.csr" 2>/dev/null \
        || die "openssl could not make the server key"
      printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n' \
        | as_owner tee "$DIR/server.ext" >/dev/null
      as_owner openssl x509 -req -in "$DIR/server.csr" -CA "$DIR/ca.crt" -CAkey "$DIR/ca.key" \
        -CAcreateserial -days 30 -extfile "$DIR/server.ext" -out "$DIR/server.crt" 2>/dev/null \
        || die "openssl could not sign the server certificate"
      as_owner install -m 600 "$DIR/server.key" "$DIR/data/server.key"
      as_owner install -m 644 "$DIR/server.crt" "$DIR/data/server.crt"
      rm -f "$DIR/server.key" "$DIR/server.csr" "$DIR/server.ext" "$DIR/ca.key" "$DIR/ca.srl"
    fi
    ssl_conf="ssl = on
ssl_cert_file = 'server.crt'
ssl_key_file = 'server.key'"
  else
    log "no openssl: the server takes plain connections only"
  fi

  # Unix socket in DIR, unless its path would exceed the kernel's 107 bytes: then TCP only
  # (the URL is TCP anyway; pg_ctl -w waits on postmaster.pid, not on the socket).
  if [ $((${#DIR} + 17)) -le 107 ]; then conf_dir=${DIR//\'/\'\'}; else
    log "$DIR is too long for a Unix socket path; TCP only"
    conf_dir=""
  fi

  while :; do
    if [ -n "$want_port" ]; then PORT=$want_port
    elif [ "$tries" -eq 1 ] && [ -f "$DIR/port" ] && ! port_in_use "$(cat "$DIR/port")"; then PORT=$(cat "$DIR/port")
    else PORT=$(free_port); fi
    as_owner tee "$DIR/data/mancard-test.conf" >/dev/null <<EOF
# Written by scripts/postgres.sh: a throwaway server for tests.
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$conf_dir'
# room in the shared lock table for a write's account locks: the backend takes up to this
# many per write (a validator's batch is at most 500 riders), docs/adr/0012-scale-out.md §8
max_locks_per_transaction = 512
# room for SERIALIZABLE's predicate locks: a settlement batch reads a few thousand rows
# (its riders' fare days). With the default 64 (32 a relation) the server soon promotes a
# batch's row locks to a lock on the whole table, and concurrent batches on other riders
# then abort each other as if they had read each other's rows (docs/adr/0012-scale-out.md §8)
max_pred_locks_per_transaction = 1024
$ssl_conf
EOF
    echo "$PORT" >"$DIR/port"
    local log_before=0
    [ -f "$DIR/log" ] && log_before=$(stat -c %s "$DIR/log")
    log "starting PostgreSQL on 127.0.0.1:$PORT (data $DIR/data, log $DIR/log)"
    if as_owner "$BIN/pg_ctl" start -D "$DIR/data" -l "$DIR/log" -w -t "$TIMEOUT" >/dev/null; then
      break
    fi
    # Another process took the port between our probe and the server's bind: try another one.
    if [ -z "$want_port" ] && [ "$tries" -lt 5 ] \
      && tail -c +$((log_before + 1)) "$DIR/log" 2>/dev/null | grep -q 'could not bind\|Address already in use'; then
      log "port $PORT was taken meanwhile; trying another"
      tries=$((tries + 1))
      continue
    fi
    # pg_ctl gave up waiting but the server may still be coming up: do not leave it behind.
    if running; then as_owner "$BIN/pg_ctl" stop -D "$DIR/data" -m immediate >/dev/null 2>&1 || true; fi
    server_failed
  done

  "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" -t "$TIMEOUT" || server_failed
  create_db mancard if-missing
  url_for postgres >"$DIR/url"; echo >>"$DIR/url"
  log "ready: $(cat "$DIR/url") (also $(cat "$DIR/url-mancard"))"
  cat "$DIR/url" >&3
}

stop() {
  if [ ! -d "$DIR/data" ]; then
    log "nothing to stop: no cluster in $DIR"
    return 0
  fi
  DIR=$(cd "$DIR" && pwd -P)
  cd "$DIR"
  BIN=$(pg_bin)
  [ -n "$BIN" ] || die "no PostgreSQL under /usr/lib/postgresql"
  set_owner
  if ! running; then
    log "not running in $DIR"
    return 0
  fi
  as_owner "$BIN/pg_ctl" stop -D "$DIR/data" -m fast -w -t "$TIMEOUT" >/dev/null \
    || { log "stop failed; the last lines of $DIR/log:"; tail -n 30 "$DIR/log" | sed 's/^/  | /'; exit 1; }
  log "stopped $DIR"
}

createdb_cmd() {
  local name=${1:-}
  [ -n "$name" ] || usage
  [ -d "$DIR/data" ] || die "no cluster in $DIR (run: $0 start $DIR)"
  DIR=$(cd "$DIR" && pwd -P)
  cd "$DIR"
  BIN=$(pg_bin)
  [ -n "$BIN" ] || die "no PostgreSQL under /usr/lib/postgresql"
  set_owner
  running || die "PostgreSQL is not running in $DIR (run: $0 start $DIR)"
  PORT=$(cat "$DIR/port")
  create_db "$name"
  cat "$DIR/url-$name" >&3
}

case $cmd in
  start) [ $# -le 3 ] || usage; start "${3:-}" ;;
  stop) [ $# -eq 2 ] || usage; stop ;;
  createdb) [ $# -eq 3 ] || usage; createdb_cmd "$3" ;;
  *) usage ;;
esac
