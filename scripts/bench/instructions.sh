#!/usr/bin/env bash
# CPU instructions the server spends per request, counted by valgrind's
# callgrind: unlike requests per second, the count does not move with
# whatever else the machine is doing, so two builds compare exactly.
#
#   scripts/bench/instructions.sh [DATABASE_URL] [REQUESTS]
#
# Serves the home page of scenario (a) (20 articles) from the release
# binary against a seeded database (default: the benchmark's 100k set),
# with the response cache off, sends 20 requests to warm up, then counts
# REQUESTS (default 100) more,
# one at a time. Needs valgrind (installed from Debian if missing).
set -euo pipefail
cd "$(dirname "$0")/../.."

url=${1:-postgres://postgres@127.0.0.1:5432/conduit_bench_100000}
requests=${2:-100}
port=18490
if ! command -v valgrind >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ]; then apt-get update -qq && apt-get install -y -qq valgrind >/dev/null
    else sudo apt-get update -qq && sudo apt-get install -y -qq valgrind >/dev/null; fi
fi
cargo build --release --locked
out=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$out"' EXIT

DATABASE_URL=$url PORT=$port APP_ENV=production RUST_LOG=warn RATE_LIMIT_POINTS=0 RESPONSE_CACHE=off \
    JWT_SECRET="$(head -c 48 /dev/urandom | base64)" \
    WEBHOOK_SECRETS_KEY="$(head -c 48 /dev/urandom | base64)" \
    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out/callgrind.out" \
    target/release/conduit >"$out/server.log" 2>&1 &
pid=$!
for _ in $(seq 1 240); do
    curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break
    kill -0 "$pid" 2>/dev/null || { cat "$out/server.log" >&2; exit 1; }
    sleep 0.5
done

python3 - "$port" "$requests" "$pid" "$out" <<'PY'
import json, pathlib, re, subprocess, sys, time, http.client

port, requests, pid, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], pathlib.Path(sys.argv[4])
query = pathlib.Path("scripts/bench/documents/home_anonymous.graphql").read_text()
body = json.dumps({"query": query, "variables": {"first": 20}}).encode()
connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

def send(n):
    for _ in range(n):
        connection.request("POST", "/graphql", body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        payload = json.loads(response.read())
        if response.status != 200 or payload.get("errors"):
            sys.exit(f"request failed: {response.status} {payload}")

send(20)
subprocess.run(["callgrind_control", "-i", "on", pid], check=True, capture_output=True)
send(requests)
subprocess.run(["callgrind_control", "-i", "off", pid], check=True, capture_output=True)
subprocess.run(["callgrind_control", "-d", pid], check=True, capture_output=True)
time.sleep(1)
# The dump holds what ran while instrumentation was on.
total = max(
    int(m.group(1))
    for dump in out.glob("callgrind.out*")
    for m in re.finditer(r"^totals: (\d+)", dump.read_text(errors="replace"), re.M)
)
print(f"{total / requests:,.0f} instructions per home-page request ({requests} requests)")
PY
