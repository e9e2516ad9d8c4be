#!/usr/bin/env bash
# The move of a SQLite database onto PostgreSQL, timed (docs/benchmarks.md, "The move").
#
#   scripts/bench-move.sh                             # 5,000 conversations × 200 = 1M messages
#   CONVERSATIONS=500 PER=200 scripts/bench-move.sh   # 100,000
#
# Builds the source once (target/bench-move/source-<C>x<P>.db, with `messaging-fixture`),
# then runs `messaging-ws-server move` into a fresh durable throwaway PostgreSQL cluster
# (scripts/pg.sh run --durable). The move's log, with its timings (`moved: … took=…` and
# `verified: … took=…`), goes to target/bench-move/move-<C>x<P>.log.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
conversations=${CONVERSATIONS:-5000}
per=${PER:-200}
out=target/bench-move
mkdir -p "$out"
cargo build --release --quiet -p messaging-ws-server -p messaging-benches \
  --bin messaging-ws-server --bin messaging-fixture
source_db="$out/source-${conversations}x${per}.db"
if [[ ! -f $source_db ]]; then
  target/release/messaging-fixture --path "$source_db" --conversations "$conversations" --per "$per"
fi
log="$out/move-${conversations}x${per}.log"
# The cluster's admin database is empty of messaging data: the move goes there.
scripts/pg.sh run --durable -- bash -c \
  'exec target/release/messaging-ws-server move --from "$0" --to "$MESSAGING_PG_URL" --log-level info' \
  "$source_db" 2>&1 | tee "$log"
grep -E "moved:|verified:" "$log"
