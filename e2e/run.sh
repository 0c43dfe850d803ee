#!/usr/bin/env bash
# Runs every end-to-end check against a built server binary:
#   - the GraphQL over HTTP audit, oversized bodies with Node's fetch, the
#     GraphiQL page in Chromium, the typed
#     client (codegen, type check, an invalid operation refused, the journey),
#     automatic persisted queries and webhook deliveries (signatures verified
#     by the Standard Webhooks libraries from npm and PyPI, before and during
#     a secret rotation), against two instances (A and B) that share one
#     database and one Redis;
#   - then trusted documents against a third instance (C) that runs only the
#     documents in the typed client's manifest.
#
#   DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres e2e/run.sh target/debug/conduit
#
# DATABASE_URL names an admin database of a PostgreSQL server that allows
# creating databases (default postgres://postgres@127.0.0.1:5432/postgres);
# throwaway databases are made there and dropped at the end. REDIS_URL
# (default redis://127.0.0.1:6379) is shared by A and B. Server logs and the
# GraphiQL screenshot land in e2e/artifacts/, with the webhook requests the
# check received (webhook-requests.json). Python's packages go to a virtual
# environment in e2e/.venv. Exits non-zero if any check failed.
set -euo pipefail

# ---------------------------------------------------------------------------
# Server environment. Keep these names in line with the server's
# configuration (src/config/, docs/operations.md).
#
# Every instance: development mode (GraphiQL served), no query budget and
# sign-in / sign-up limits high enough for repeated runs from one address.
SERVER_ENV=(
    APP_ENV=development
    GRAPHIQL=true
    RATE_LIMIT_POINTS=0
    SIGN_IN_LIMIT_PER_ACCOUNT=100000
    SIGN_IN_LIMIT_PER_ADDRESS=100000
    SIGN_UP_LIMIT_PER_ADDRESS=100000
    RUST_LOG=warn
)
# A and B: automatic persisted queries kept in the shared Redis.
APQ_ENV=(
    PERSISTED_QUERIES=redis
)
# A and B: webhooks may be delivered to private addresses, such as the
# receiver that e2e/webhooks.mjs runs on 127.0.0.1. The check talks to A
# only, but B needs it too: the job queue is in the shared database, so B's
# workers may take deliveries to endpoints registered through A. Both seal
# the signing secrets with one key, as a deployment would.
WEBHOOKS_ENV=(
    WEBHOOKS_ALLOW_PRIVATE_ADDRESSES=true
    WEBHOOK_SECRETS_KEY=e2e-webhook-secrets-key
)
# C: only the documents of the typed client's manifest run.
TRUSTED_DOCUMENTS_VAR=TRUSTED_DOCUMENTS
# How long one check may run before it fails, and how long a server may take
# to become ready or to stop after SIGTERM.
CHECK_TIMEOUT_SECS=${E2E_CHECK_TIMEOUT_SECS:-600}
READY_TIMEOUT_SECS=${E2E_READY_TIMEOUT_SECS:-90}
STOP_TIMEOUT_SECS=${E2E_STOP_TIMEOUT_SECS:-30}
# Ports of A, B and C.
PORT_A=${E2E_PORT_A:-18281}
PORT_B=${E2E_PORT_B:-18282}
PORT_C=${E2E_PORT_C:-18283}
# ---------------------------------------------------------------------------

if [ $# -ne 1 ]; then
    echo "usage: e2e/run.sh <path to the conduit binary>" >&2
    exit 2
fi
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BINARY="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
if [ ! -x "$BINARY" ]; then
    echo "not an executable: $1" >&2
    exit 2
fi
ADMIN_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
ARTIFACTS="$ROOT/e2e/artifacts"
MANIFEST="$ROOT/clients/typescript/src/gql/persisted-documents.json"
export DEBIAN_FRONTEND=noninteractive
cd "$ROOT"
mkdir -p "$ARTIFACTS"

step() { printf '\n=== %s\n' "$*"; }

# A URL of the database NAME on the admin URL's server (query string kept).
database_url() {
    local base="${ADMIN_URL%%\?*}"
    local query="${ADMIN_URL#"$base"}"
    printf '%s/%s%s' "${base%/*}" "$1" "$query"
}

declare -A PIDS=()
DATABASES=()
FAILED=()
PASSED=()

stop_server() {
    local name=$1 pid="${PIDS[$1]:-}"
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + STOP_TIMEOUT_SECS))
    while kill -0 "$pid" 2>/dev/null; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "server $name still running ${STOP_TIMEOUT_SECS} s after SIGTERM: killed" >&2
            FAILED+=("server $name stops on SIGTERM within ${STOP_TIMEOUT_SECS} s")
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.2
    done
    wait "$pid" 2>/dev/null || true
    unset "PIDS[$name]"
}

cleanup() {
    local status=$?
    for name in "${!PIDS[@]}"; do
        stop_server "$name"
    done
    for db in "${DATABASES[@]}"; do
        psql "$ADMIN_URL" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 \
            || echo "could not drop database $db" >&2
    done
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

show_logs() {
    for log in "$ARTIFACTS"/server-*.log; do
        [ -f "$log" ] || continue
        echo "--- last lines of $(basename "$log")"
        tail -n 40 "$log"
    done
}

# start_server NAME PORT DATABASE_URL [VAR=value...]
start_server() {
    local name=$1 port=$2 db=$3
    shift 3
    env "${SERVER_ENV[@]}" "$@" HOST=127.0.0.1 PORT="$port" DATABASE_URL="$db" \
        REDIS_URL="$REDIS_URL" JWT_SECRET="$JWT_SECRET" \
        "$BINARY" >"$ARTIFACTS/server-$name.log" 2>&1 &
    PIDS[$name]=$!
    local deadline=$((SECONDS + READY_TIMEOUT_SECS))
    while [ "$SECONDS" -lt "$deadline" ]; do
        if curl -fsS --max-time 5 "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; then
            echo "server $name ready on port $port"
            return 0
        fi
        if ! kill -0 "${PIDS[$name]}" 2>/dev/null; then
            wait "${PIDS[$name]}" || true
            unset "PIDS[$name]"
            echo "server $name exited during start-up" >&2
            tail -n 40 "$ARTIFACTS/server-$name.log" >&2
            return 1
        fi
        sleep 0.2
    done
    echo "server $name not ready on port $port after ${READY_TIMEOUT_SECS} s" >&2
    tail -n 40 "$ARTIFACTS/server-$name.log" >&2
    return 1
}

# check NAME COMMAND...: runs a check, records the outcome, goes on. A check
# still running after CHECK_TIMEOUT_SECS is stopped and fails.
check() {
    local name=$1 status=0
    shift
    step "$name"
    timeout --kill-after=10 "$CHECK_TIMEOUT_SECS" "$@" || status=$?
    if [ "$status" -eq 0 ]; then
        PASSED+=("$name")
    elif [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
        FAILED+=("$name (timed out after ${CHECK_TIMEOUT_SECS} s)")
        echo "FAILED: $name: still running after ${CHECK_TIMEOUT_SECS} s"
    else
        FAILED+=("$name")
        echo "FAILED: $name"
    fi
}

# Runs a command in the typed client's folder (an external command, so a
# check's timeout can stop it).
CLIENT_DIR="$ROOT/clients/typescript"

step "prerequisites"
if [ ! -x "${CHROMIUM_PATH:-/usr/bin/chromium}" ]; then
    apt-get update -qq
    apt-get install -y -qq chromium >/dev/null
fi
command -v node >/dev/null 2>&1 || { apt-get update -qq; apt-get install -y -qq nodejs npm >/dev/null; }
node --version
(cd "$ROOT/e2e" && npm ci --no-audit --no-fund --loglevel=error)
(cd "$ROOT/clients/typescript" && npm ci --no-audit --no-fund --loglevel=error)
# Python for e2e/verify_webhooks.py, which checks webhook signatures with the
# PyPI package pinned in e2e/requirements.txt. Debian's python3 lacks
# ensurepip (so `python3 -m venv` fails) until python3-venv is installed.
python3 -c 'import ensurepip' >/dev/null 2>&1 || { apt-get update -qq; apt-get install -y -qq python3 python3-venv >/dev/null; }
python3 --version
python3 -m venv "$ROOT/e2e/.venv"
"$ROOT/e2e/.venv/bin/pip" install --quiet --disable-pip-version-check -r "$ROOT/e2e/requirements.txt"
JWT_SECRET="$(head -c 48 /dev/urandom | base64 | tr -d '\n')"

DB="conduit_e2e_js_$$"
psql "$ADMIN_URL" -qc "CREATE DATABASE $DB"
DATABASES+=("$DB")
SERVER_DB="$(database_url "$DB")"

step "servers A and B (automatic persisted queries in Redis at $REDIS_URL)"
if start_server A "$PORT_A" "$SERVER_DB" "${APQ_ENV[@]}" "${WEBHOOKS_ENV[@]}" \
    && start_server B "$PORT_B" "$SERVER_DB" "${APQ_ENV[@]}" "${WEBHOOKS_ENV[@]}"; then
    A="http://127.0.0.1:$PORT_A"
    B="http://127.0.0.1:$PORT_B"
    check "GraphQL over HTTP audit (A)" node e2e/graphql-http-audit.mjs "$A/graphql"
    check "oversized bodies read their 413 on kept-alive connections (A)" node e2e/oversized.mjs "$A/graphql"
    check "GraphiQL in Chromium (A)" node e2e/graphiql.mjs "$A"
    check "typed client: codegen and type check" env -C "$CLIENT_DIR" npm run build
    check "typed client: an invalid operation fails codegen" env -C "$CLIENT_DIR" node check-invalid.mjs
    check "typed journey (A)" env -C "$CLIENT_DIR" CONDUIT_JWT_SECRET="$JWT_SECRET" CONDUIT_URL="$A/graphql" npm run journey
    check "typed journey registering documents (A, CONDUIT_PERSISTED=apq)" \
        env -C "$CLIENT_DIR" CONDUIT_JWT_SECRET="$JWT_SECRET" CONDUIT_URL="$A/graphql" CONDUIT_PERSISTED=apq npm run journey
    check "typed journey by hash only on the other instance (B, CONDUIT_PERSISTED=1)" \
        env -C "$CLIENT_DIR" CONDUIT_JWT_SECRET="$JWT_SECRET" CONDUIT_URL="$B/graphql" CONDUIT_PERSISTED=1 npm run journey
    check "automatic persisted queries (A and B)" node e2e/persisted.mjs --apq "$A" "$B"
    check "webhook signatures verified by the Standard Webhooks libraries (npm and PyPI)" \
        node e2e/webhooks.mjs "$A/graphql"
else
    FAILED+=("start servers A and B")
fi
stop_server A
stop_server B

step "server C (trusted documents: $MANIFEST)"
if [ ! -f "$MANIFEST" ]; then
    echo "no manifest at $MANIFEST (did codegen fail?)" >&2
    FAILED+=("start server C")
elif start_server C "$PORT_C" "$SERVER_DB" "$TRUSTED_DOCUMENTS_VAR=$MANIFEST"; then
    C="http://127.0.0.1:$PORT_C"
    check "trusted documents (C)" node e2e/persisted.mjs --trusted "$C" "$MANIFEST"
    check "typed journey by hash only (C, CONDUIT_PERSISTED=1)" \
        env -C "$CLIENT_DIR" CONDUIT_JWT_SECRET="$JWT_SECRET" CONDUIT_URL="$C/graphql" CONDUIT_PERSISTED=1 npm run journey
else
    FAILED+=("start server C")
fi
stop_server C

step "summary"
for name in "${PASSED[@]}"; do echo "passed: $name"; done
for name in "${FAILED[@]}"; do echo "FAILED: $name"; done
if [ "${#FAILED[@]}" -gt 0 ]; then
    show_logs
    exit 1
fi
echo "every end-to-end check passed"
