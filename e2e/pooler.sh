#!/usr/bin/env bash
# Runs a command with PgBouncer (Debian's package, pool_mode = transaction)
# in front of the tests' PostgreSQL at 127.0.0.1:5432, forwarding every
# database, and TEST_DATABASE_POOLER_URL pointing at it: the contract tests
# then reach PostgreSQL through the pooler (DATABASE_POOLER=transaction).
#
#   e2e/pooler.sh cargo test --test api -- --skip query_count:: --skip plans::
set -euo pipefail

PORT=${POOLER_TEST_PORT:-26433}
DIR=$(mktemp -d /tmp/conduit-pooler.XXXXXX)
if ! command -v pgbouncer >/dev/null 2>&1; then
    apt-get install -y -qq --no-install-recommends pgbouncer >/dev/null 2>&1 \
        || { apt-get update -qq && apt-get install -y -qq --no-install-recommends pgbouncer >/dev/null; }
fi
cat >"$DIR/pgbouncer.ini" <<INI
[databases]
* = host=127.0.0.1 port=5432

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PORT
unix_socket_dir =
auth_type = trust
auth_file = $DIR/users.txt
pool_mode = transaction
server_reset_query =
ignore_startup_parameters = extra_float_digits,options,application_name
max_client_conn = 2000
default_pool_size = 20
max_user_connections = 50
logfile = $DIR/pgbouncer.log
pidfile = $DIR/pgbouncer.pid
INI
echo '"postgres" ""' >"$DIR/users.txt"
# PgBouncer refuses to run as root.
run_as=()
if [ "$(id -u)" -eq 0 ]; then
    chown -R postgres "$DIR"
    run_as=(runuser -u postgres --)
fi
"${run_as[@]}" pgbouncer -d "$DIR/pgbouncer.ini"
stop() {
    [ -f "$DIR/pgbouncer.pid" ] && kill "$(cat "$DIR/pgbouncer.pid")" 2>/dev/null || true
    rm -rf "$DIR"
}
trap stop EXIT
ready=
for _ in $(seq 1 100); do
    if PGCONNECT_TIMEOUT=2 psql "postgres://postgres@127.0.0.1:$PORT/postgres" -tAc 'SELECT 1' >/dev/null 2>&1; then
        ready=1
        break
    fi
    sleep 0.1
done
if [ -z "$ready" ]; then
    echo "PgBouncer did not answer on 127.0.0.1:$PORT within 10 s" >&2
    tail -n 20 "$DIR/pgbouncer.log" >&2 || true
    exit 1
fi
echo "PgBouncer (transaction pooling) on 127.0.0.1:$PORT"
TEST_DATABASE_POOLER_URL="postgres://postgres@127.0.0.1:$PORT/postgres" "$@"
