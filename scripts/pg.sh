#!/usr/bin/env bash
# shellcheck disable=SC2317  # functions run from traps look unreachable to shellcheck
# A throwaway PostgreSQL cluster around one command.
#
#   scripts/pg.sh run [--durable] -- <command> [args...]
#
# Starts a fresh cluster on 127.0.0.1 (free port, trust auth, unix socket in its own temp
# dir), runs <command> with
#
#   MESSAGING_PG_URL=postgres://postgres@127.0.0.1:<port>/postgres   (admin database)
#   MESSAGING_PG_TEMPLATE=messaging_template                          (migrated template)
#   MESSAGING_PG_PSQL=<path of psql>                                  (for own databases)
#   MESSAGING_PG_CONTROL=<script> stop|start                          (fault tests only)
#
# then stops the cluster and deletes its directory, also when the command fails or the
# script is interrupted. Exits with the command's exit code (130/143 on SIGINT/SIGTERM).
#
# By default the cluster is for tests: fsync, synchronous_commit and full_page_writes are
# off. `--durable` leaves them at their defaults (on), for benchmarks:
#
#   scripts/pg.sh run -- cargo test --workspace
#   scripts/pg.sh run --durable -- cargo bench --bench store
#
# The template database is created and migrated with
# `cargo run -p messaging-store-pg --example pg_migrate -- <url>`; tests create their own
# database from it. MESSAGING_PG_NO_TEMPLATE=1 skips that step (no template, no variable).
#
# Debian keeps initdb/pg_ctl in /usr/lib/postgresql/<version>/bin, not on PATH, and they
# refuse to run as root: as root they run as the `postgres` user. When no server binaries
# are found, the `postgresql` package is installed (root only).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
me="pg.sh"

usage() {
  sed -n '3,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0" >&2
  exit "${1:-2}"
}

die() {
  echo "$me: $*" >&2
  exit 1
}

# ---------------------------------------------------------------------------- arguments

[[ $# -ge 1 ]] || usage
case $1 in
  run) shift ;;
  -h | --help | help) usage 0 ;;
  *) echo "$me: unknown subcommand '$1'" >&2; usage ;;
esac
durable=0
while [[ $# -gt 0 ]]; do
  case $1 in
    --durable) durable=1; shift ;;
    --) shift; break ;;
    -h | --help) usage 0 ;;
    *) echo "$me: unexpected argument '$1' (the command goes after --)" >&2; usage ;;
  esac
done
[[ $# -ge 1 ]] || { echo "$me: no command given after --" >&2; usage; }

# ----------------------------------------------------------------------------- binaries

# The newest /usr/lib/postgresql/<version>/bin holding the server binaries, else the
# directory of the initdb found on PATH (symlinks resolved).
find_bindir() {
  local d found=""
  while IFS= read -r d; do
    [[ -x $d/initdb && -x $d/pg_ctl && -x $d/postgres ]] && found=$d
  done < <(compgen -G '/usr/lib/postgresql/*/bin' | sort -V)
  if [[ -z $found ]] && command -v initdb >/dev/null 2>&1; then
    d=$(dirname "$(readlink -f "$(command -v initdb)")")
    [[ -x $d/pg_ctl && -x $d/postgres ]] && found=$d
  fi
  [[ -n $found ]] && echo "$found"
}

is_root=0
[[ $(id -u) -eq 0 ]] && is_root=1

if ! bindir=$(find_bindir); then
  if [[ $is_root -ne 1 ]]; then
    die "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found in" \
      "/usr/lib/postgresql/*/bin or on PATH; install them (Debian: sudo apt-get install" \
      "postgresql) or run this script as root to install them"
  fi
  echo "$me: PostgreSQL not found, installing it with apt-get" >&2
  apt-get update >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql >&2
  bindir=$(find_bindir) || die "installed postgresql, but still no initdb/pg_ctl/postgres found"
fi

# Client tools: from the same bin dir when there, else PATH.
tool() {
  if [[ -x $bindir/$1 ]]; then
    echo "$bindir/$1"
  elif command -v "$1" >/dev/null 2>&1; then
    command -v "$1"
  else
    die "$1 not found in $bindir or on PATH"
  fi
}
psql=$(tool psql)
pg_isready=$(tool pg_isready)

# initdb and the server refuse to run as root: run them as `postgres` then.
if [[ $is_root -eq 1 ]]; then
  if ! id -u postgres >/dev/null 2>&1; then
    useradd --system --user-group --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin postgres
  fi
  as_pg() { (cd "$dir" && runuser -u postgres -- "$@"); }
else
  as_pg() { (cd "$dir" && "$@"); }
fi

# ------------------------------------------------------------------------------ cleanup

dir=""     # the cluster's temp dir: data/, server.log, the unix socket
child=""   # pid of the command (or migration) being waited on

# pids of $1 and all its descendants, parents first.
process_tree() {
  local pid=$1 c
  echo "$pid"
  # shellcheck disable=SC2013  # the file is one line of space-separated pids
  for c in $(cat /proc/"$pid"/task/*/children 2>/dev/null); do
    process_tree "$c"
  done
}

stop_child() {
  local sig=$1 pids i
  [[ -n $child ]] && kill -0 "$child" 2>/dev/null || return 0
  pids=$(process_tree "$child")
  # shellcheck disable=SC2086
  kill -s "$sig" $pids 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    kill -0 "$child" 2>/dev/null || break
    sleep 0.1
  done
  # shellcheck disable=SC2086
  kill -s KILL $pids 2>/dev/null || true
  wait "$child" 2>/dev/null || true
  child=""
}

stop_cluster() {
  [[ -n $dir && -d $dir ]] || return 0
  local pidfile=$dir/data/postmaster.pid pid="" i
  if [[ -f $pidfile ]]; then
    pid=$(head -n 1 "$pidfile" 2>/dev/null || true)
    as_pg "$bindir/pg_ctl" stop -D "$dir/data" -m immediate -w -t 30 >/dev/null 2>&1 || true
    if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
      kill -KILL "$pid" 2>/dev/null || true
    fi
    # Backends leave once the postmaster is gone.
    for ((i = 0; i < 100; i++)); do
      if [[ -z $pid ]] || ! kill -0 "$pid" 2>/dev/null; then break; fi
      sleep 0.1
    done
  fi
  rm -rf "$dir"
  dir=""
}

on_exit() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  stop_child TERM
  stop_cluster
  exit "$rc"
}

on_signal() {
  local sig=$1 code=$2
  echo "$me: got SIG$sig, stopping" >&2
  stop_child "$sig"
  exit "$code" # runs on_exit
}

trap on_exit EXIT
trap 'on_signal INT 130' INT
trap 'on_signal TERM 143' TERM

# Runs a command in the background and waits for it, so that a signal sent to this script
# is handled at once (bash defers traps until a foreground command ends). Stdin is passed
# on explicitly and SIGINT/SIGQUIT are restored (bash ignores them in background jobs), so
# the command still behaves as if run in the foreground: reads the terminal, dies on ^C.
run_child() {
  local rc=0
  env --default-signal=INT,QUIT "$@" <&0 &
  child=$!
  wait "$child" || rc=$?
  child=""
  return "$rc"
}

# ------------------------------------------------------------------------------ cluster

dir=$(mktemp -d /tmp/messaging-pg.XXXXXX)
[[ $is_root -eq 1 ]] && chown postgres: "$dir"
chmod 700 "$dir"

initdb_args=(-D "$dir/data" -U postgres --auth=trust --encoding=UTF8 --locale=C)
[[ $durable -eq 1 ]] || initdb_args+=(--no-sync)
if ! as_pg "$bindir/initdb" "${initdb_args[@]}" >"$dir/initdb.log" 2>&1; then
  cat "$dir/initdb.log" >&2
  die "initdb failed (output above)"
fi

{
  echo
  echo "# scripts/pg.sh"
  echo "listen_addresses = '127.0.0.1'"
  echo "unix_socket_directories = '$dir'"
  echo "max_connections = 400"
  echo "shared_buffers = 128MB"
  if [[ $durable -eq 1 ]]; then
    echo "# --durable: fsync, synchronous_commit, full_page_writes at their defaults (on)"
  else
    echo "fsync = off"
    echo "synchronous_commit = off"
    echo "full_page_writes = off"
  fi
} >>"$dir/data/postgresql.conf"

# A free port: the kernel's pick when python3 is there, else a random one nobody answers
# on. Another process may take it before the server binds, so starting is retried.
pick_port() {
  local p
  if command -v python3 >/dev/null 2>&1 &&
    p=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null); then
    echo "$p"
    return
  fi
  while :; do
    p=$((20000 + RANDOM % 40000))
    if ! (exec 3<>/dev/tcp/127.0.0.1/"$p") 2>/dev/null; then
      echo "$p"
      return
    fi
  done
}

log=$dir/server.log
port=""
for attempt in 1 2 3 4 5; do
  candidate=$(pick_port)
  : >"$log"
  [[ $is_root -eq 1 ]] && chown postgres: "$log"
  if as_pg "$bindir/pg_ctl" start -D "$dir/data" -l "$log" -w -t 60 \
    -o "-p $candidate" >/dev/null 2>&1; then
    port=$candidate
    break
  fi
  if grep -qiE 'could not bind|address already in use' "$log"; then
    echo "$me: port $candidate taken, retrying ($attempt/5)" >&2
    continue
  fi
  echo "$me: PostgreSQL did not start; server log ($log):" >&2
  cat "$log" >&2
  exit 1
done
[[ -n $port ]] || { cat "$log" >&2; die "could not find a free port after 5 attempts"; }

# pg_ctl -w waits for the postmaster; check the TCP listener answers too.
ready=0
for ((i = 0; i < 300; i++)); do
  if "$pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres; then
    ready=1
    break
  fi
  sleep 0.1
done
if [[ $ready -ne 1 ]]; then
  echo "$me: PostgreSQL on 127.0.0.1:$port not accepting connections after 30 s; server log:" >&2
  cat "$log" >&2
  exit 1
fi

base_url="postgres://postgres@127.0.0.1:$port"
export MESSAGING_PG_URL="$base_url/postgres"

# Fault tests stop and start this cluster: `$MESSAGING_PG_CONTROL stop` (immediate, like a
# crash: clients see their connections drop), `start` (same port, waits until it accepts
# connections). Only a test binary that runs alone may use it (cargo runs test binaries one
# after another; within one, such tests hold a lock). A test cluster runs with
# synchronous_commit off, so an immediate stop loses the last commits as a crash would:
# a test that checks data across a stop runs CHECKPOINT first.
control=$dir/control.sh
{
  echo '#!/usr/bin/env bash'
  echo 'set -euo pipefail'
  echo 'case ${1:-} in'
  if [[ $is_root -eq 1 ]]; then pgrun="runuser -u postgres --"; else pgrun=""; fi
  echo "  stop) cd '$dir' && $pgrun '$bindir/pg_ctl' stop -D '$dir/data' -m immediate -w -t 30 >/dev/null ;;"
  echo "  start) cd '$dir' && $pgrun '$bindir/pg_ctl' start -D '$dir/data' -l '$log' -w -t 60 -o '-p $port' >/dev/null"
  echo "    for i in \$(seq 300); do '$pg_isready' -q -h 127.0.0.1 -p $port -U postgres -d postgres && exit 0; sleep 0.1; done; exit 1 ;;"
  echo '  *) echo "usage: $0 stop|start" >&2; exit 2 ;;'
  echo 'esac'
} >"$control"
chmod 755 "$control"
export MESSAGING_PG_CONTROL="$control"
# For scripts that make databases of their own (scripts/bench-server.sh).
export MESSAGING_PG_PSQL="$psql"
mode="fsync off"
[[ $durable -eq 1 ]] && mode="durable"
echo "$me: PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') ($mode) on 127.0.0.1:$port, data and socket in $dir" >&2

sql() { "$psql" "$MESSAGING_PG_URL" -X -q -v ON_ERROR_STOP=1 -c "$1"; }

# --------------------------------------------------------------------- template database

if [[ ${MESSAGING_PG_NO_TEMPLATE:-} != 1 ]]; then
  template=messaging_template
  sql "CREATE DATABASE $template" >/dev/null
  # In this shell, not a subshell, so that a signal reaches on_signal while cargo runs.
  pushd "$root" >/dev/null
  run_child cargo run --quiet -p messaging-store-pg --example pg_migrate -- "$base_url/$template" ||
    die "migrating $template failed (cargo run -p messaging-store-pg --example pg_migrate)"
  popd >/dev/null
  # CREATE DATABASE ... TEMPLATE fails while anyone is connected to the template: refuse
  # new connections, end any left over, and wait until they are gone.
  sql "ALTER DATABASE $template WITH is_template = true ALLOW_CONNECTIONS = false" >/dev/null
  left=1
  for ((i = 0; i < 100; i++)); do
    left=$("$psql" "$MESSAGING_PG_URL" -X -qAt -v ON_ERROR_STOP=1 \
      -c "SET client_min_messages = error" \
      -c "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '$template'")
    [[ $left -eq 0 ]] && break
    sleep 0.1
  done
  [[ $left -eq 0 ]] || die "connections to $template did not go away"
  export MESSAGING_PG_TEMPLATE=$template
fi

# ------------------------------------------------------------------------------ command

rc=0
run_child "$@" || rc=$?
exit "$rc"
