#!/usr/bin/env bash
# Runs every test of the workspace: unit tests, doc tests, the conformance suite on every
# store, the examples. This is the README's test command and what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."

# PostgreSQL tests fail instead of skipping when no database is reachable.
export MESSAGING_PG_REQUIRED=1
# A throwaway PostgreSQL on loopback (installed first if missing), stopped afterwards.
# Inside it: every test, the two-instance example (a message crossing between two
# messengers on one database), and the load generator's smoke run on both stores (its
# checks of behaviour, never speed).
./scripts/pg.sh run -- bash -c '
  set -euo pipefail
  cargo test --workspace
  crossed=$(cargo run --quiet --example postgres_two_instances -- "$MESSAGING_PG_URL")
  grep -q "received: \"Your order shipped!\"" <<<"$crossed"
  echo "example postgres_two_instances: ok"
  cargo run --quiet -p messaging-benches --bin messaging-loadgen -- smoke
  echo "messaging-loadgen smoke (SQLite): ok"
  cargo run --quiet -p messaging-benches --bin messaging-loadgen -- smoke \
    --database-url "$MESSAGING_PG_URL"
  echo "messaging-loadgen smoke (PostgreSQL): ok"
'
# The embedding example must keep printing the conversation.
output=$(cargo run --quiet --example embed_sqlite)
grep -q "history (as alice sees it)" <<<"$output"
echo "example embed_sqlite: ok"
# The host's service handle on a match: the example checks every step itself.
output=$(cargo run --quiet --example match_service)
grep -q "match flow: ok" <<<"$output"
echo "example match_service: ok"
# A push worker on the library's durable consumer: it checks its own pushes.
output=$(cargo run --quiet --example push_notifications)
grep -q "push flow: ok" <<<"$output"
echo "example push_notifications: ok"
# The marketplace app: its end-to-end test runs with the workspace's; the binary starts.
output=$(cargo run --quiet --example marketplace -- --help)
grep -q -- "--data-dir" <<<"$output"
echo "example marketplace: ok"
# The marketplace's pages in headless Chromium (installed when missing), two people chatting.
./scripts/browser-tests.sh
