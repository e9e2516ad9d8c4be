#!/usr/bin/env bash
# The end-to-end benchmarks of docs/benchmarks.md: the release server, driven over loopback
# by messaging-loadgen, three runs per store (a fresh database each run). Reports (JSON) go
# to target/bench-server/<store>/<mode>-<run>.json and the medians are printed as tables.
#
#   scripts/bench-server.sh sqlite-full sqlite-normal                # SQLite
#   scripts/pg.sh run --durable -- scripts/bench-server.sh postgres  # PostgreSQL
#
# RUNS=n changes the number of runs. The server runs with raised rate limits (a benchmark
# sends faster than a person); every report states the limits it ran with.
#
# MODES picks the runs (default: idle handshakes romeo throughput latency). `tail` (10,000
# users at 5,000 messages/s) and `light` (200 users at 1,000 messages/s) are the tails at
# a steady and at a light load (issue #19's table). `http` is the
# throughput run with sends over HTTP (keep-alive) and delivery over SSE, at the same
# settings as `throughput`, for the rows beside the WebSocket ones:
#
#   MODES="throughput http" scripts/bench-server.sh sqlite-full
#
# WARMUP_S and DURATION_S (default 5 and 20) shorten the load runs for a quick check.
#
# `soak` is the long run (not in the default MODES): 1,000 users at 9 messages/s each (half
# of the measured capacity), with reconnects, syncs, searches and event streams mixed in,
# sampled every 10 s, for SOAK_S seconds (default 1800); SOAK_RATE sets the messages per
# second of each user (default 9). Its samples go to soak-<run>.jsonl beside the report:
#
#   RUNS=1 MODES=soak scripts/bench-server.sh sqlite-full
set -euo pipefail
cd "$(dirname "$0")/.."

stores=("$@")
[[ ${#stores[@]} -gt 0 ]] || stores=(sqlite-full sqlite-normal)
runs=${RUNS:-3}
read -r -a modes <<<"${MODES:-idle handshakes romeo throughput latency}"
warmup_s=${WARMUP_S:-5}
duration_s=${DURATION_S:-20}
for mode in "${modes[@]}"; do
  case $mode in
    idle | handshakes | romeo | throughput | latency | tail | light | http | soak) ;;
    *) echo "unknown mode $mode (idle, handshakes, romeo, throughput, latency, tail, light, http, soak)" >&2; exit 2 ;;
  esac
done
port=${BENCH_PORT:-18080}
out=${OUT:-target/bench-server}

# As many connections as this machine allows a process.
ulimit -n "$(ulimit -Hn)"

cargo build --release --quiet -p messaging-ws-server -p messaging-benches \
  --bin messaging-ws-server --bin messaging-loadgen
# SERVER_BIN runs another build of the server (an A/B against a baseline checkout) with
# this checkout's load generator; OUT keeps its reports apart.
server_bin=${SERVER_BIN:-target/release/messaging-ws-server}
loadgen_bin=target/release/messaging-loadgen

server_pid=
stop_server() {
  if [[ -n $server_pid ]]; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=
  fi
}
trap stop_server EXIT

# start_server <run dir> <store>: a fresh server on a fresh database.
start_server() {
  local dir=$1 store=$2 database
  local -a extra=()
  case $store in
    sqlite-full) database="$dir/messaging.db"; extra=(--sqlite-synchronous full) ;;
    sqlite-normal) database="$dir/messaging.db"; extra=(--sqlite-synchronous normal) ;;
    postgres)
      [[ -n ${MESSAGING_PG_URL:-} && -n ${MESSAGING_PG_PSQL:-} ]] ||
        { echo "postgres: run under scripts/pg.sh run --durable --" >&2; exit 2; }
      local name
      name="bench_$(date +%s%N)"
      "$MESSAGING_PG_PSQL" "$MESSAGING_PG_URL" -X -q -v ON_ERROR_STOP=1 \
        -c "CREATE DATABASE $name TEMPLATE ${MESSAGING_PG_TEMPLATE:-template0}" >/dev/null
      database="${MESSAGING_PG_URL%/*}/$name"
      ;;
    *) echo "unknown store $store (sqlite-full, sqlite-normal, postgres)" >&2; exit 2 ;;
  esac
  # The secret goes in a file only its owner reads (secrets are never flag values).
  secret_file="$dir/jwt-secret"
  (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$secret_file")
  "$server_bin" --listen "127.0.0.1:$port" --database-url "$database" --jwt-secret-file "$secret_file" \
    --ops-per-s 1000000 --ops-burst 1000000 --max-connections 20000 "${extra[@]}" \
    >"$dir/server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "the server did not start; its log:" >&2
  cat "$dir/server.log" >&2
  exit 1
}

loadgen() { # loadgen <report file> <mode and its flags...>
  local report=$1
  shift
  "$loadgen_bin" --server "127.0.0.1:$port" --jwt-secret-file "$secret_file" --server-pid "$server_pid" \
    --json "$@" >"$report"
}

for store in "${stores[@]}"; do
  dir="$out/$store"
  rm -rf "$dir"
  mkdir -p "$dir"
  for run in $(seq "$runs"); do
    echo "== $store, run $run of $runs" >&2
    start_server "$dir" "$store"
    for mode in "${modes[@]}"; do
      report="$dir/$mode-$run.json"
      case $mode in
        idle) loadgen "$report" idle --connections 19000 ;;
        handshakes) loadgen "$report" handshakes --connections 10000 ;;
        romeo) loadgen "$report" romeo ;;
        # Throughput: the server's capacity, 1,000 users keeping 8 sends each in flight.
        throughput)
          loadgen "$report" load --pairs 500 --window 8 --warmup-s "$warmup_s" --duration-s "$duration_s" ;;
        # Latency: 10,000 users, 10,000 messages/s.
        latency)
          loadgen "$report" load --pairs 5000 --rate 1 --warmup-s "$warmup_s" --duration-s "$duration_s" ;;
        # The tail at a steady load: 10,000 users, 5,000 messages/s.
        tail)
          loadgen "$report" load --pairs 5000 --rate 0.5 --warmup-s "$warmup_s" --duration-s "$duration_s" ;;
        # The tail at a light load: 200 users, 1,000 messages/s.
        light)
          loadgen "$report" load --pairs 100 --rate 5 --warmup-s "$warmup_s" --duration-s "$duration_s" ;;
        # The throughput run over HTTP sends (keep-alive, up to 8 connections per user) and
        # SSE delivery.
        http)
          loadgen "$report" load --pairs 500 --window 8 --warmup-s "$warmup_s" --duration-s "$duration_s" \
            --send http --receive sse ;;
        # The soak: flat memory, files, WAL and tail over a long mixed load.
        soak)
          wal=()
          [[ $store == postgres ]] || wal=(--database "$dir/messaging.db")
          loadgen "$report" soak --duration-s "${SOAK_S:-1800}" --rate "${SOAK_RATE:-9}" \
            --series "$dir/soak-$run.jsonl" "${wal[@]}" ;;
      esac
    done
    stop_server
    rm -f "$dir"/messaging.db*
  done
  echo "## $store"
  for mode in "${modes[@]}"; do
    "$loadgen_bin" median "$dir/$mode"-*.json | sed "s/^| load |/| $mode |/"
  done
done
