#!/usr/bin/env bash
# One command for the benchmark: installs wrk if missing, builds the release
# binary, then runs scripts/bench/bench.py (seed, serve, load, pgbench,
# BENCHMARKS.md) and scripts/bench/peer.py (the home page against
# PostGraphile v5, the response cache; needs Node and npm; BENCH_PEER=0
# skips it). Options are bench.py's: scripts/bench.sh --help
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v wrk >/dev/null 2>&1; then
    echo "installing wrk"
    if [ "$(id -u)" -eq 0 ]; then apt-get update -qq && apt-get install -y -qq wrk >/dev/null
    else sudo apt-get update -qq && sudo apt-get install -y -qq wrk >/dev/null; fi
fi
for tool in psql pgbench python3; do
    command -v "$tool" >/dev/null 2>&1 || { echo "$tool is required" >&2; exit 1; }
done
cargo build --release --locked
python3 scripts/bench/bench.py "$@"
if [ "${BENCH_PEER:-1}" != 0 ]; then
    exec python3 scripts/bench/peer.py --report
fi
