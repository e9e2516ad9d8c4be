#!/usr/bin/env bash
# Webhook delivery under the capacity load (docs/benchmarks.md "Webhooks"): the release
# server on SQLite FULL posting every durable event to a local sink
# (scripts/webhook-sink.py, answers 200 at once), driven by `load --pairs 500 --window 8`.
# Prints the load's figures, the webhook's pending events sampled every second (its lag
# behind the log, in events), and how long it took to drain after the load stopped.
#
#   scripts/bench-webhooks.sh            # BATCH=100 DURATION_S=20 by default
set -euo pipefail
cd "$(dirname "$0")/.."
batch=${BATCH:-100}
duration_s=${DURATION_S:-20}
port=${BENCH_PORT:-18080}
sink_port=${SINK_PORT:-18099}
dir=$(mktemp -d)
ulimit -n "$(ulimit -Hn)"
cargo build --release --quiet -p messaging-ws-server -p messaging-benches \
  --bin messaging-ws-server --bin messaging-loadgen
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$dir"; }
trap cleanup EXIT
scripts/webhook-sink.py "127.0.0.1:$sink_port" & pids+=($!)
(umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/jwt-secret")
MESSAGING_WEBHOOK_SECRET=bench-webhook-secret-0123456789 target/release/messaging-ws-server \
  --listen "127.0.0.1:$port" --database-url "$dir/messaging.db" --jwt-secret-file "$dir/jwt-secret" \
  --ops-per-s 1000000 --ops-burst 1000000 --max-connections 20000 \
  --webhook-url "http://127.0.0.1:$sink_port/hook" --webhook-batch "$batch" >"$dir/server.log" 2>&1 &
server=$!; pids+=($server)
sleep 2
metric() { curl -s "127.0.0.1:$port/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
( while sleep 1; do echo "pending $(metric messaging_webhook_pending_events) delivered $(metric messaging_webhook_events_delivered_total)"; done ) >"$dir/samples" & pids+=($!)
target/release/messaging-loadgen --server "127.0.0.1:$port" --jwt-secret-file "$dir/jwt-secret" \
  --server-pid "$server" load --pairs 500 --window 8 --warmup-s 5 --duration-s "$duration_s" |
  grep -E "stored per second|send→deliver p(50|99) "
stopped=$(date +%s.%N)
while [[ $(metric messaging_webhook_pending_events) != 0 ]]; do sleep 0.1; done
drained=$(date +%s.%N)
echo "webhook pending events, sampled each second during the load: $(awk '{print $2}' "$dir/samples" | tr '\n' ' ')"
echo "max pending: $(awk '{print $2}' "$dir/samples" | sort -n | tail -1)"
echo "drained $(echo "$drained - $stopped" | bc) s after the load stopped"
echo "sink: $(curl -s "127.0.0.1:$sink_port/count")"
echo "server: delivered $(metric messaging_webhook_events_delivered_total), failed attempts $(metric messaging_webhook_attempts_failed_total)"
