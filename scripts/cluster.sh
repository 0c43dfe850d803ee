#!/usr/bin/env bash
# The deployed topology on one machine: a PostgreSQL primary and a streaming
# replica, PgBouncer (optional), Redis, N conduit instances and HAProxy in
# front of them. For fault tests, benchmarks and trying a rolling restart.
#
#   scripts/cluster.sh up [--instances N] [--apply-delay MS] [--pooler] [--binary PATH]
#   scripts/cluster.sh down | status | env
#   scripts/cluster.sh kill N | stop N | start N
#
#   up       start everything and wait until each instance's /readyz answers
#            200 and HAProxy sees every instance up. Fails if a cluster already
#            runs in the state directory.
#            --instances N     servers behind HAProxy (default 3; 0 starts the
#                              data tier and HAProxy only, no binary needed)
#            --apply-delay MS  recovery_min_apply_delay on the replica, to make
#                              replica lag visible (default 0)
#            --pooler          start PgBouncer (transaction pooling); instances
#                              then get DATABASE_URL=PgBouncer and
#                              DATABASE_DIRECT_URL=the primary
#            --binary PATH     server binary (default target/release/conduit,
#                              relative to the repository root)
#   down     stop everything `up` started and remove the state directory
#   status   each component's state, replication lag, HAProxy's view of the
#            servers; exits 1 if something that should run does not
#   env      `export` lines (PRIMARY_URL, REPLICA_URL, POOLER_URL (empty
#            without --pooler), REDIS_URL, BALANCER_URL, INSTANCE_URLS (space
#            separated)): eval "$(scripts/cluster.sh env)"
#   kill N   SIGKILL instance N (a crash)
#   stop N   SIGTERM instance N and wait for it to exit (a graceful stop)
#   start N  start instance N again with the settings `up` used
#
# Environment:
#   CLUSTER_DIR                 state directory (default /tmp/conduit-cluster)
#   CLUSTER_PRIMARY_PORT        25432     CLUSTER_REPLICA_PORT   25433
#   CLUSTER_POOLER_PORT         26432     CLUSTER_REDIS_PORT     26379
#   CLUSTER_INSTANCE_BASE_PORT  28081 (instance N listens on base + N - 1)
#   CLUSTER_BALANCER_PORT       28080     CLUSTER_STATS_PORT     28404
#   (All below Linux's ephemeral range, 32768-60999: a port there can be
#   the local end of some other connection, and the server then fails to
#   bind it although nothing listens on it.)
#   REDIS_URL                   an existing Redis to use, if it answers PING;
#                               otherwise the script starts its own
#   CLUSTER_INSTANCE_ENV        extra KEY=VALUE pairs (space separated) for
#                               every instance, e.g. OTEL settings
#   CLUSTER_STOP_TIMEOUT        seconds `stop N` waits for the exit (default 30)
#   PG_BIN                      PostgreSQL binaries (default
#                               /usr/lib/postgresql/15/bin)
#
# Ports, options and secrets are saved in the state directory at `up`, so
# later commands (status, env, start N, down) use the same values whatever
# their own environment says.

set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
CLUSTER_DIR=${CLUSTER_DIR:-/tmp/conduit-cluster}
# One spelling of the path (absolute, symlinks resolved): it is compared with
# the working directories and command lines of the processes it holds.
if [ -d "$CLUSTER_DIR" ]; then CLUSTER_DIR=$(cd "$CLUSTER_DIR" && pwd -P); fi
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
# `down` deletes the state directory recursively: only one carrying this
# marker, which `up` writes, is ever removed.
MARKER=.conduit-cluster
SETTINGS=$CLUSTER_DIR/cluster.conf

log() { printf '%s\n' "cluster: $*" >&2; }
die() {
    printf '%s\n' "cluster: error: $*" >&2
    exit 1
}

usage() {
    cat <<'EOF'
usage: scripts/cluster.sh up [--instances N] [--apply-delay MS] [--pooler] [--binary PATH]
       scripts/cluster.sh down | status | env
       scripts/cluster.sh kill N | stop N | start N
EOF
}

is_root() { [ "$(id -u)" -eq 0 ]; }

# PostgreSQL and PgBouncer refuse to run as root: as root they run as the
# `postgres` OS user; as anyone else, as that user.
# The working directory is the state directory: initdb and pg_ctl stop when
# they cannot read their current directory (root's may be private).
as_pg() {
    (
        cd "$CLUSTER_DIR"
        if is_root; then
            exec runuser -u postgres -- "$@"
        else
            exec "$@"
        fi
    )
}

# A directory PostgreSQL (or PgBouncer) writes to must belong to the user it
# runs as.
pg_owned_dir() {
    mkdir -p "$1"
    chmod 700 "$1"
    if is_root; then chown postgres:postgres "$1"; fi
}

pg_owned_file() {
    : >"$1"
    if is_root; then chown postgres:postgres "$1"; fi
}

# Whether something accepts TCP connections on 127.0.0.1:$1.
port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

require_free_port() {
    if port_open "$1"; then
        die "port $1 ($2) is already in use; free it or set $3"
    fi
}

# The pid in file $1 if that process is alive and is the one the file is
# for: a pid left in a stale file may since have been reused by an unrelated
# process, which `down` must not signal. A zombie counts as dead (in a
# container nothing may reap a killed child).
live_pid() {
    local file=$1 pid state
    [ -s "$file" ] || return 1
    pid=$(head -n1 "$file" 2>/dev/null) || return 1
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || echo '?')
    [ "$state" != Z ] || return 1
    case $(basename "$file") in
    instance-*.pid)
        # Each instance runs in its own directory, whatever the binary.
        [ "$(readlink "/proc/$pid/cwd" 2>/dev/null)" = "$CLUSTER_DIR/$(basename "$file" .pid)" ] || return 1
        ;;
    postmaster.pid) cmdline_has "$pid" "$(dirname "$file")" || return 1 ;;
    pgbouncer.pid) cmdline_has "$pid" pgbouncer || return 1 ;;
    redis.pid) cmdline_has "$pid" redis-server || return 1 ;;
    haproxy.pid) cmdline_has "$pid" haproxy || return 1 ;;
    esac
    printf '%s\n' "$pid"
}

cmdline_has() {
    tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -qF -- "$2"
}

# Waits up to $2 seconds for the process in pid file $1 to exit.
wait_exit() {
    local file=$1 timeout=$2 i
    for ((i = 0; i < timeout * 10; i++)); do
        live_pid "$file" >/dev/null || return 0
        sleep 0.1
    done
    return 1
}

# --- settings ---------------------------------------------------------------

default_settings() {
    PRIMARY_PORT=${CLUSTER_PRIMARY_PORT:-25432}
    REPLICA_PORT=${CLUSTER_REPLICA_PORT:-25433}
    POOLER_PORT=${CLUSTER_POOLER_PORT:-26432}
    REDIS_PORT=${CLUSTER_REDIS_PORT:-26379}
    INSTANCE_BASE_PORT=${CLUSTER_INSTANCE_BASE_PORT:-28081}
    BALANCER_PORT=${CLUSTER_BALANCER_PORT:-28080}
    STATS_PORT=${CLUSTER_STATS_PORT:-28404}
    INSTANCE_ENV=${CLUSTER_INSTANCE_ENV:-}
    INSTANCES=3
    APPLY_DELAY_MS=0
    POOLER=0
    BINARY=target/release/conduit
    OWN_REDIS=0
    CLUSTER_REDIS_URL=
}

save_settings() {
    local name
    {
        echo "# written by scripts/cluster.sh up; read by its other commands"
        for name in PRIMARY_PORT REPLICA_PORT POOLER_PORT REDIS_PORT \
            INSTANCE_BASE_PORT BALANCER_PORT STATS_PORT INSTANCE_ENV INSTANCES \
            APPLY_DELAY_MS POOLER BINARY OWN_REDIS CLUSTER_REDIS_URL; do
            printf '%s=%q\n' "$name" "${!name}"
        done
    } >"$SETTINGS"
}

# Every command but `up` works on the cluster `up` recorded.
load_settings() {
    if [ ! -f "$CLUSTER_DIR/$MARKER" ] || [ ! -f "$SETTINGS" ]; then
        die "no cluster in $CLUSTER_DIR (run: scripts/cluster.sh up)"
    fi
    default_settings
    # shellcheck source=/dev/null
    . "$SETTINGS"
}

primary_url() { echo "postgres://postgres@127.0.0.1:$PRIMARY_PORT/conduit"; }
replica_url() { echo "postgres://postgres@127.0.0.1:$REPLICA_PORT/conduit"; }
pooler_url() { echo "postgres://postgres@127.0.0.1:$POOLER_PORT/conduit"; }
instance_port() { echo $((INSTANCE_BASE_PORT + $1 - 1)); }
instance_url() { echo "http://127.0.0.1:$(instance_port "$1")"; }

binary_path() {
    case $BINARY in
    /*) echo "$BINARY" ;;
    *) echo "$REPO_ROOT/$BINARY" ;;
    esac
}

psql_at() {
    # -X: a user's ~/.psqlrc must not change the output parsed here.
    local port=$1 db=$2
    shift 2
    "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d "$db" "$@"
}

# --- up: prerequisites ------------------------------------------------------

install_packages() {
    local missing=() pkg
    command -v haproxy >/dev/null 2>&1 || missing+=(haproxy)
    if [ "$POOLER" = 1 ] && ! command -v pgbouncer >/dev/null 2>&1; then missing+=(pgbouncer); fi
    [ ${#missing[@]} -eq 0 ] && return 0
    is_root || die "missing ${missing[*]}: install them (apt-get install ${missing[*]}) or run as root"
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # The package index may be stale or absent (a fresh container): update
    # it only when the install fails.
    if ! apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null >"$CLUSTER_DIR/apt.log" 2>&1; then
        if ! { apt-get update -q && apt-get install -y -q --no-install-recommends "${missing[@]}"; } \
            </dev/null >>"$CLUSTER_DIR/apt.log" 2>&1; then
            die "apt-get install ${missing[*]} failed; see $CLUSTER_DIR/apt.log"
        fi
    fi
    for pkg in "${missing[@]}"; do
        command -v "$pkg" >/dev/null 2>&1 || die "$pkg is still missing after apt-get install"
    done
    # Debian's packages start their own system-wide services where an init
    # system runs; the cluster only uses the binaries.
}

check_prerequisites() {
    local tool
    for tool in initdb pg_ctl pg_basebackup pg_isready psql; do
        [ -x "$PG_BIN/$tool" ] || die "$PG_BIN/$tool not found (install postgresql-15 or set PG_BIN)"
    done
    command -v curl >/dev/null 2>&1 || die "curl is required"
    command -v redis-cli >/dev/null 2>&1 || die "redis-cli is required (apt-get install redis-tools)"
    if is_root; then
        id postgres >/dev/null 2>&1 || die "running as root needs a 'postgres' OS user to run PostgreSQL"
    fi
    if [ "$INSTANCES" -gt 0 ]; then
        local bin
        bin=$(binary_path)
        [ -x "$bin" ] || die "server binary $bin not found or not executable (cargo build --release, or --binary PATH)"
    fi
}

check_ports() {
    require_free_port "$PRIMARY_PORT" "PostgreSQL primary" CLUSTER_PRIMARY_PORT
    require_free_port "$REPLICA_PORT" "PostgreSQL replica" CLUSTER_REPLICA_PORT
    if [ "$POOLER" = 1 ]; then require_free_port "$POOLER_PORT" PgBouncer CLUSTER_POOLER_PORT; fi
    require_free_port "$BALANCER_PORT" HAProxy CLUSTER_BALANCER_PORT
    require_free_port "$STATS_PORT" "HAProxy stats" CLUSTER_STATS_PORT
    local n
    for ((n = 1; n <= INSTANCES; n++)); do
        require_free_port "$(instance_port "$n")" "instance $n" CLUSTER_INSTANCE_BASE_PORT
    done
}

# Refuses a running cluster; clears what a crashed or half-finished `up` left.
prepare_state_dir() {
    if [ -e "$CLUSTER_DIR" ]; then
        if [ -f "$CLUSTER_DIR/$MARKER" ]; then
            if anything_running; then
                die "a cluster already runs in $CLUSTER_DIR (scripts/cluster.sh status; scripts/cluster.sh down)"
            fi
            log "removing the stale state of a cluster that no longer runs in $CLUSTER_DIR"
            rm -rf "$CLUSTER_DIR"
        elif [ -n "$(ls -A "$CLUSTER_DIR" 2>/dev/null)" ]; then
            die "$CLUSTER_DIR exists, is not empty and is not a cluster's state directory; choose another CLUSTER_DIR"
        fi
    fi
    mkdir -p "$CLUSTER_DIR"
    CLUSTER_DIR=$(cd "$CLUSTER_DIR" && pwd -P)
    SETTINGS=$CLUSTER_DIR/cluster.conf
    # Other users (postgres) must reach their subdirectories; the secrets
    # inside are 0600.
    chmod 755 "$CLUSTER_DIR"
    : >"$CLUSTER_DIR/$MARKER"
    STATE_CREATED=1
    if is_root && ! runuser -u postgres -- test -x "$CLUSTER_DIR"; then
        die "the postgres user cannot reach $CLUSTER_DIR (a parent directory is private); choose another CLUSTER_DIR"
    fi
}

# A fresh random secret per cluster, shared by every instance: production
# refuses a weak JWT_SECRET, and tokens signed by one instance must verify on
# the others.
make_secret() {
    local file=$1
    (umask 077 && head -c 48 /dev/urandom | base64 | tr -d '\n=' | tr '+/' '-_' >"$file")
}

# --- PostgreSQL -------------------------------------------------------------

pg_socket_dir() { echo "$CLUSTER_DIR/pg-run"; }

start_primary() {
    local data=$CLUSTER_DIR/pg-primary logfile=$CLUSTER_DIR/postgres-primary.log
    pg_owned_dir "$data"
    pg_owned_dir "$(pg_socket_dir)"
    pg_owned_file "$logfile"
    log "initialising the primary in $data"
    as_pg "$PG_BIN/initdb" -D "$data" --auth=trust -U postgres -E UTF8 --locale=C.UTF-8 \
        >"$CLUSTER_DIR/initdb.log" 2>&1 || {
        tail -n 20 "$CLUSTER_DIR/initdb.log" >&2
        die "initdb failed"
    }
    # Loopback only, trust: a throwaway cluster that must not be reachable
    # from elsewhere. Replication connections come from the replica over
    # 127.0.0.1.
    cat >"$data/pg_hba.conf" <<'EOF'
# TYPE  DATABASE     USER  ADDRESS       METHOD
local   all          all                 trust
host    all          all   127.0.0.1/32  trust
local   replication  all                 trust
host    replication  all   127.0.0.1/32  trust
EOF
    cat >>"$data/postgresql.conf" <<EOF

# --- scripts/cluster.sh ---
listen_addresses = '127.0.0.1'
port = $PRIMARY_PORT
unix_socket_directories = '$(pg_socket_dir)'
cluster_name = 'conduit-primary'
# Instances x DATABASE_POOL_SIZE, plus replica, LISTEN, migration and psql
# connections, with room for a pooler and for tests that open their own.
max_connections = 300
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
# The replica has a replication slot, so the primary keeps the WAL it still
# needs (with --apply-delay it lags on purpose).
hot_standby = on
# Copied to the replica by pg_basebackup; on the replica it keeps the primary
# from vacuuming rows its queries still read (no conflict cancellations).
hot_standby_feedback = on
wal_receiver_status_interval = 1s
log_line_prefix = '%m [%p] %q%u@%d '
EOF
    if is_root; then chown postgres:postgres "$data/pg_hba.conf"; fi
    log "starting the primary on 127.0.0.1:$PRIMARY_PORT"
    as_pg "$PG_BIN/pg_ctl" -D "$data" -l "$logfile" -w -t 60 start >/dev/null || {
        tail -n 20 "$logfile" >&2
        die "the primary did not start"
    }
    psql_at "$PRIMARY_PORT" postgres -c 'CREATE DATABASE conduit' >/dev/null
}

start_replica() {
    local data=$CLUSTER_DIR/pg-replica logfile=$CLUSTER_DIR/postgres-replica.log
    pg_owned_dir "$data"
    pg_owned_file "$logfile"
    log "cloning the replica from the primary (pg_basebackup)"
    # -R writes standby.signal and primary_conninfo; -C -S creates the slot
    # the replica streams from.
    as_pg "$PG_BIN/pg_basebackup" -D "$data" -R -X stream -c fast -C -S conduit_replica \
        -d "host=127.0.0.1 port=$PRIMARY_PORT user=postgres application_name=conduit-replica" \
        >"$CLUSTER_DIR/basebackup.log" 2>&1 || {
        tail -n 20 "$CLUSTER_DIR/basebackup.log" >&2
        die "pg_basebackup failed"
    }
    # The copied postgresql.conf is the primary's: the later lines win.
    local conf
    conf=$(
        cat <<EOF

# --- scripts/cluster.sh: replica ---
port = $REPLICA_PORT
cluster_name = 'conduit-replica'
hot_standby = on
hot_standby_feedback = on
recovery_min_apply_delay = '${APPLY_DELAY_MS}ms'
EOF
    )
    # shellcheck disable=SC2016 # expanded by the inner shell
    as_pg sh -c 'printf "%s\n" "$1" >>"$2"' _ "$conf" "$data/postgresql.conf"
    log "starting the replica on 127.0.0.1:$REPLICA_PORT (apply delay ${APPLY_DELAY_MS} ms)"
    as_pg "$PG_BIN/pg_ctl" -D "$data" -l "$logfile" -w -t 60 start >/dev/null || {
        tail -n 20 "$logfile" >&2
        die "the replica did not start"
    }
    wait_streaming
}

wait_streaming() {
    local i state
    for ((i = 0; i < 300; i++)); do
        state=$(psql_at "$PRIMARY_PORT" postgres -tA \
            -c "SELECT state FROM pg_stat_replication WHERE application_name = 'conduit-replica'" 2>/dev/null || true)
        if [ "$state" = streaming ]; then
            log "the replica streams from the primary"
            return 0
        fi
        sleep 0.1
    done
    tail -n 20 "$CLUSTER_DIR/postgres-replica.log" >&2
    die "the replica is not streaming after 30 s (state: ${state:-none})"
}

stop_postgres() {
    local name=$1 data=$CLUSTER_DIR/pg-$1
    [ -f "$data/postmaster.pid" ] || return 0
    log "stopping PostgreSQL $name"
    as_pg "$PG_BIN/pg_ctl" -D "$data" -m fast -w -t 30 stop >/dev/null 2>&1 ||
        as_pg "$PG_BIN/pg_ctl" -D "$data" -m immediate -w -t 10 stop >/dev/null 2>&1 ||
        log "PostgreSQL $name did not stop"
}

postgres_pid() {
    local data=$CLUSTER_DIR/pg-$1
    [ -f "$data/postmaster.pid" ] || return 1
    live_pid "$data/postmaster.pid"
}

# --- PgBouncer --------------------------------------------------------------

start_pooler() {
    local dir=$CLUSTER_DIR/pgbouncer
    pg_owned_dir "$dir"
    # Each instance holds at most DATABASE_POOL_SIZE (10) client connections.
    # In transaction mode a server connection is busy only for a transaction,
    # so fewer server connections than clients serve them; the cap stays well
    # below the primary's max_connections, leaving room for the instances'
    # direct (LISTEN, migration) connections.
    local clients=$((INSTANCES * 10)) pool
    pool=$((clients * 2 / 3))
    [ "$pool" -ge 10 ] || pool=10
    cat >"$dir/userlist.txt" <<'EOF'
"postgres" ""
EOF
    cat >"$dir/pgbouncer.ini" <<EOF
; Generated by scripts/cluster.sh up --pooler.
[databases]
conduit = host=127.0.0.1 port=$PRIMARY_PORT dbname=conduit
postgres = host=127.0.0.1 port=$PRIMARY_PORT dbname=postgres

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $POOLER_PORT
; TCP only: no socket in /var/run/postgresql, which the system server owns.
unix_socket_dir =
auth_type = trust
auth_file = $dir/userlist.txt
admin_users = postgres
stats_users = postgres
pool_mode = transaction
; In transaction mode a server connection changes client at every
; transaction: nothing session-level to reset (and DISCARD ALL would only
; cost a round trip).
server_reset_query =
; Startup parameters drivers send that PgBouncer cannot track per client.
ignore_startup_parameters = extra_float_digits,options,application_name
max_client_conn = $((clients * 3 + 100))
default_pool_size = $pool
min_pool_size = 0
reserve_pool_size = 5
reserve_pool_timeout = 1
max_db_connections = $((pool + 10))
server_lifetime = 3600
server_idle_timeout = 60
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
EOF
    if is_root; then chown postgres:postgres "$dir/userlist.txt" "$dir/pgbouncer.ini"; fi
    log "starting PgBouncer on 127.0.0.1:$POOLER_PORT (transaction pooling, pool $pool)"
    as_pg pgbouncer -d "$dir/pgbouncer.ini" >"$dir/start.log" 2>&1 || {
        cat "$dir/start.log" >&2
        tail -n 20 "$dir/pgbouncer.log" >&2 2>/dev/null || true
        die "PgBouncer did not start"
    }
    local i
    for ((i = 0; i < 100; i++)); do
        if "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$POOLER_PORT" -d conduit -U postgres; then
            return 0
        fi
        sleep 0.1
    done
    tail -n 20 "$dir/pgbouncer.log" >&2 || true
    die "PgBouncer does not answer on $POOLER_PORT"
}

stop_pooler() {
    local pid
    pid=$(live_pid "$CLUSTER_DIR/pgbouncer/pgbouncer.pid") || return 0
    log "stopping PgBouncer"
    # SIGINT: PgBouncer's "safe shutdown" waits for transactions in flight.
    kill -INT "$pid" 2>/dev/null || true
    wait_exit "$CLUSTER_DIR/pgbouncer/pgbouncer.pid" 10 || kill -KILL "$pid" 2>/dev/null || true
}

# --- Redis ------------------------------------------------------------------

redis_answers() {
    [ "$(timeout 3 redis-cli -u "$1" ping 2>/dev/null </dev/null)" = PONG ]
}

start_redis() {
    if [ -n "${REDIS_URL:-}" ] && redis_answers "$REDIS_URL"; then
        log "using the Redis at REDIS_URL ($REDIS_URL)"
        CLUSTER_REDIS_URL=$REDIS_URL
        OWN_REDIS=0
        return 0
    fi
    if [ -n "${REDIS_URL:-}" ]; then
        log "REDIS_URL ($REDIS_URL) does not answer PING: starting a Redis of the cluster's own"
    fi
    command -v redis-server >/dev/null 2>&1 || die "redis-server not found (apt-get install redis-server, or set REDIS_URL)"
    require_free_port "$REDIS_PORT" Redis CLUSTER_REDIS_PORT
    local dir=$CLUSTER_DIR/redis
    mkdir -p "$dir"
    log "starting Redis on 127.0.0.1:$REDIS_PORT (no persistence)"
    # No RDB snapshots and no AOF: rate-limit windows and persisted queries
    # are caches, and the state directory is thrown away at `down`.
    redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no \
        --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" \
        --dir "$dir" </dev/null >/dev/null ||
        die "redis-server did not start; see $dir/redis.log"
    CLUSTER_REDIS_URL=redis://127.0.0.1:$REDIS_PORT
    OWN_REDIS=1
    local i
    for ((i = 0; i < 100; i++)); do
        redis_answers "$CLUSTER_REDIS_URL" && return 0
        sleep 0.1
    done
    tail -n 20 "$dir/redis.log" >&2 || true
    die "Redis does not answer on $REDIS_PORT"
}

stop_redis() {
    [ "$OWN_REDIS" = 1 ] || return 0
    local pid
    pid=$(live_pid "$CLUSTER_DIR/redis/redis.pid") || return 0
    log "stopping Redis"
    kill -TERM "$pid" 2>/dev/null || true
    wait_exit "$CLUSTER_DIR/redis/redis.pid" 10 || kill -KILL "$pid" 2>/dev/null || true
}

# --- instances --------------------------------------------------------------

instance_pidfile() { echo "$CLUSTER_DIR/instance-$1.pid"; }
instance_log() { echo "$CLUSTER_DIR/instance-$1.log"; }

check_instance_number() {
    [[ ${1:-} =~ ^[0-9]+$ ]] || die "expected an instance number, got '${1:-}'"
    if [ "$1" -lt 1 ] || [ "$1" -gt "$INSTANCES" ]; then
        die "no instance $1 (this cluster has $INSTANCES)"
    fi
}

# Launches instance $1 without waiting for it to be ready.
launch_instance() {
    local n=$1 port pidfile logfile bin dir
    port=$(instance_port "$n")
    pidfile=$(instance_pidfile "$n")
    logfile=$(instance_log "$n")
    bin=$(binary_path)
    dir=$CLUSTER_DIR/instance-$n
    [ -x "$bin" ] || die "server binary $bin not found or not executable"
    if live_pid "$pidfile" >/dev/null; then die "instance $n already runs (pid $(live_pid "$pidfile"))"; fi
    require_free_port "$port" "instance $n" CLUSTER_INSTANCE_BASE_PORT
    mkdir -p "$dir"
    # A clean environment, so `start N` from any shell gives the instance the
    # settings `up` gave it; CLUSTER_INSTANCE_ENV (saved at `up`) adds to it.
    local vars=(
        "PATH=/usr/local/bin:/usr/bin:/bin"
        "HOME=$dir"
        "PORT=$port"
        "HOST=127.0.0.1"
        "APP_ENV=production"
        "JWT_SECRET=$(cat "$CLUSTER_DIR/jwt-secret")"
        # Production stores webhook signing secrets sealed; every instance
        # (and worker) must share the key to open them.
        "WEBHOOK_SECRETS_KEY=$(cat "$CLUSTER_DIR/webhook-secrets-key")"
        "DATABASE_REPLICA_URLS=$(replica_url)"
        "REDIS_URL=$CLUSTER_REDIS_URL"
        # Several instances: one budget per client and one set of persisted
        # queries, shared through Redis, not one per instance.
        "RATE_LIMIT_STORE=redis"
        "PERSISTED_QUERIES=redis"
        # HAProxy appends the client's address to X-Forwarded-For.
        "TRUSTED_PROXY_HOPS=1"
        # /readyz answers 503 this long after SIGTERM: HAProxy (checks every
        # 500 ms, 2 failures) takes the instance out within about a second.
        "SHUTDOWN_DRAIN_SECS=2"
        "LOG_FORMAT=json"
    )
    if [ "$POOLER" = 1 ]; then
        # Transaction pooling: one transaction per checkout, nothing kept
        # prepared; migrations and LISTEN go to the primary itself.
        vars+=("DATABASE_URL=$(pooler_url)" "DATABASE_POOLER=transaction"
            "DATABASE_DIRECT_URL=$(primary_url)")
    else
        vars+=("DATABASE_URL=$(primary_url)")
    fi
    if [ -n "$INSTANCE_ENV" ]; then
        local extra pair
        read -r -a extra <<<"$INSTANCE_ENV"
        for pair in "${extra[@]}"; do
            [[ $pair =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || die "CLUSTER_INSTANCE_ENV: '$pair' is not KEY=VALUE"
            vars+=("$pair")
        done
    fi
    rm -f "$pidfile"
    printf '{"cluster":"starting instance %s on port %s"}\n' "$n" "$port" >>"$logfile"
    # setsid: the instance outlives this script and is not hit by a Ctrl-C
    # in the shell that ran it. The inner shell records its own pid, then
    # becomes the server (exec keeps the pid). The working directory is the
    # instance's own, so a .env in the caller's directory is not read.
    (
        cd "$dir"
        # shellcheck disable=SC2016 # expanded by the inner shell
        setsid -f bash -c 'echo $$ >"$0"; exec "$@"' "$pidfile" \
            env -i "${vars[@]}" "$bin" serve >>"$logfile" 2>&1 </dev/null
    )
    local i
    for ((i = 0; i < 50; i++)); do
        [ -s "$pidfile" ] && return 0
        sleep 0.1
    done
    die "instance $n did not record its pid in $pidfile"
}

# Waits for instance $1's /readyz to answer 200 (60 s).
wait_instance_ready() {
    local n=$1 url pidfile code i
    url=$(instance_url "$n")/readyz
    pidfile=$(instance_pidfile "$n")
    for ((i = 0; i < 600; i++)); do
        if ! live_pid "$pidfile" >/dev/null; then
            echo "--- $(instance_log "$n") (last 30 lines) ---" >&2
            tail -n 30 "$(instance_log "$n")" >&2 || true
            die "instance $n exited before it was ready"
        fi
        code=$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$url" 2>/dev/null || true)
        if [ "$code" = 200 ]; then
            log "instance $n ready on $(instance_url "$n") (pid $(live_pid "$pidfile"))"
            return 0
        fi
        sleep 0.1
    done
    echo "--- $(instance_log "$n") (last 30 lines) ---" >&2
    tail -n 30 "$(instance_log "$n")" >&2 || true
    die "instance $n: $url did not answer 200 within 60 s (last: ${code:-no answer})"
}

stop_instance() {
    local n=$1 timeout=$2 pidfile pid
    pidfile=$(instance_pidfile "$n")
    pid=$(live_pid "$pidfile") || return 0
    kill -TERM "$pid" 2>/dev/null || true
    if wait_exit "$pidfile" "$timeout"; then
        rm -f "$pidfile"
        return 0
    fi
    return 1
}

# --- HAProxy ----------------------------------------------------------------

write_haproxy_cfg() {
    local cfg=$CLUSTER_DIR/haproxy.cfg n
    cat >"$cfg" <<EOF
# Generated by scripts/cluster.sh up.
global
    maxconn 4096
    # For tests that change a server's state at run time
    # (echo "disable server conduit/instance-1" | socat stdio unix:...).
    stats socket $CLUSTER_DIR/haproxy.sock mode 600 level admin
    # The default buffer: a request must fit in one to be retried (below).
    tune.bufsize 16384

defaults
    mode http
    option forwardfor
    timeout connect 2s
    timeout client 30s
    # Longer than the server's REQUEST_TIMEOUT_SECS (30 s), so a slow request
    # gets the server's own TIMEOUT answer rather than HAProxy's 504 (and, for
    # a GET, a replay of the same expensive request).
    timeout server 35s
    # A client has 10 s to send its request headers (slowloris).
    timeout http-request 10s
    timeout http-keep-alive 10s
    timeout queue 5s
    # WebSockets: once upgraded, the connection is a tunnel; the server pings
    # an idle socket every 15 s (WEBSOCKET_PING_SECS), so an hour only ends
    # sockets that are really gone. A half-closed socket ends sooner.
    timeout tunnel 1h
    timeout client-fin 10s
    timeout server-fin 10s

frontend conduit
    bind 127.0.0.1:$BALANCER_PORT
    default_backend conduit

backend conduit
    # Least connections rather than round robin: WebSockets last for hours,
    # and round robin would keep piling them on an instance that already
    # holds many.
    balance leastconn
    # /readyz answers 503 while an instance drains after SIGTERM or cannot
    # reach the database; two failed checks 500 ms apart take it out, two
    # good ones put it back.
    option httpchk GET /readyz
    http-check expect status 200
    default-server inter 500ms fall 2 rise 2
    #
    # Retries (HAProxy 2.6 configuration manual: "retries", "retry-on",
    # "option redispatch", "http-request disable-l7-retry"):
    # - conn-failure: the connection to the instance failed, so the request
    #   was never sent: always safe to retry, whatever the method. This is
    #   what hides a killed or stopped instance until the checks notice it.
    # - empty-response / response-timeout: the request WAS sent and no answer
    #   came (the instance died mid-request, or took longer than "timeout
    #   server"). HAProxy itself does not look at the method: it replays any
    #   request listed in retry-on, POST included, provided the request fit in
    #   one buffer (tune.bufsize; larger ones are never retried). A GraphQL
    #   mutation arrives as a POST and may already have been applied, so these
    #   two conditions are kept for GET/HEAD (queries and persisted queries
    #   over GET, WebSocket upgrades) and OPTIONS only, by disabling layer-7
    #   retries for every other method below. A POST whose instance dies
    #   while handling it gets a 502: the client decides whether to resend.
    # - Status codes (a 503 from a draining instance, for instance) are not
    #   retried: the server already answered, and its answer reaches the client.
    # "option http-buffer-request" is not needed for this: HAProxy copies a
    # request it may replay as it forwards it, and the bodies of POSTs are
    # not replayed.
    retries 3
    retry-on conn-failure empty-response response-timeout
    http-request disable-l7-retry unless METH_GET || METH_OPTIONS
    # Every retry goes to another instance, not to the same dead one after a
    # one-second turn-around.
    option redispatch 1
EOF
    for ((n = 1; n <= INSTANCES; n++)); do
        echo "    server instance-$n 127.0.0.1:$(instance_port "$n") check" >>"$cfg"
    done
    cat >>"$cfg" <<EOF

listen stats
    bind 127.0.0.1:$STATS_PORT
    stats enable
    stats uri /stats
    stats refresh 2s
    stats show-legends
EOF
}

start_haproxy() {
    local cfg=$CLUSTER_DIR/haproxy.cfg
    write_haproxy_cfg
    haproxy -c -q -f "$cfg" >"$CLUSTER_DIR/haproxy-check.log" 2>&1 || {
        cat "$CLUSTER_DIR/haproxy-check.log" >&2
        die "haproxy -c rejected $cfg"
    }
    log "starting HAProxy on 127.0.0.1:$BALANCER_PORT (stats: http://127.0.0.1:$STATS_PORT/stats)"
    haproxy -D -p "$CLUSTER_DIR/haproxy.pid" -f "$cfg" </dev/null >"$CLUSTER_DIR/haproxy.log" 2>&1 || {
        cat "$CLUSTER_DIR/haproxy.log" >&2
        die "HAProxy did not start"
    }
}

stop_haproxy() {
    local pid
    pid=$(live_pid "$CLUSTER_DIR/haproxy.pid") || return 0
    log "stopping HAProxy"
    # SIGUSR1 is HAProxy's soft stop: it finishes the requests in flight.
    kill -USR1 "$pid" 2>/dev/null || true
    wait_exit "$CLUSTER_DIR/haproxy.pid" 5 || kill -TERM "$pid" 2>/dev/null || true
    wait_exit "$CLUSTER_DIR/haproxy.pid" 5 || kill -KILL "$pid" 2>/dev/null || true
}

stats_csv() {
    curl -s -m 2 "http://127.0.0.1:$STATS_PORT/stats;csv"
}

# Waits until HAProxy's checks see every instance UP (30 s).
wait_balancer() {
    [ "$INSTANCES" -gt 0 ] || return 0
    local i up
    for ((i = 0; i < 300; i++)); do
        up=$(stats_csv 2>/dev/null | awk -F, '$1 == "conduit" && $2 ~ /^instance-/ && $18 == "UP"' | wc -l || true)
        up=${up:-0}
        if [ "$up" -eq "$INSTANCES" ]; then
            log "HAProxy sees $INSTANCES/$INSTANCES instances up"
            return 0
        fi
        sleep 0.1
    done
    die "HAProxy sees ${up:-0}/$INSTANCES instances up after 30 s (see http://127.0.0.1:$STATS_PORT/stats)"
}

# --- commands ---------------------------------------------------------------

anything_running() {
    local f
    for f in "$CLUSTER_DIR"/instance-*.pid "$CLUSTER_DIR/haproxy.pid" \
        "$CLUSTER_DIR/pgbouncer/pgbouncer.pid" "$CLUSTER_DIR/redis/redis.pid" \
        "$CLUSTER_DIR/pg-primary/postmaster.pid" "$CLUSTER_DIR/pg-replica/postmaster.pid"; do
        [ -e "$f" ] && live_pid "$f" >/dev/null && return 0
    done
    return 1
}

# Where `up` is, for the message if it fails: the step, and the first
# command that failed (die() exits without one; its message says what).
UP_STEP=
FAILED_AT=
STATE_CREATED=0
on_up_command_error() {
    [ -n "$FAILED_AT" ] || FAILED_AT="line $1: $2"
}
on_up_exit() {
    local status=$?
    [ "$status" -ne 0 ] || return 0
    printf '%s\n' "cluster: up failed while ${UP_STEP:-preparing} (exit $status${FAILED_AT:+; $FAILED_AT})." >&2
    if [ "$STATE_CREATED" = 1 ]; then
        printf '%s\n' "cluster: what started is left as it is for inspection (logs in $CLUSTER_DIR); scripts/cluster.sh down removes it." >&2
    fi
}

cmd_up() {
    default_settings
    while [ $# -gt 0 ]; do
        case $1 in
        --instances)
            [[ ${2:-} =~ ^[0-9]+$ ]] || die "--instances needs a number"
            INSTANCES=$2
            shift 2
            ;;
        --instances=*)
            INSTANCES=${1#*=}
            [[ $INSTANCES =~ ^[0-9]+$ ]] || die "--instances needs a number"
            shift
            ;;
        --apply-delay)
            [[ ${2:-} =~ ^[0-9]+$ ]] || die "--apply-delay needs milliseconds"
            APPLY_DELAY_MS=$2
            shift 2
            ;;
        --apply-delay=*)
            APPLY_DELAY_MS=${1#*=}
            [[ $APPLY_DELAY_MS =~ ^[0-9]+$ ]] || die "--apply-delay needs milliseconds"
            shift
            ;;
        --pooler)
            POOLER=1
            shift
            ;;
        --binary)
            [ -n "${2:-}" ] || die "--binary needs a path"
            BINARY=$2
            shift 2
            ;;
        --binary=*)
            BINARY=${1#*=}
            shift
            ;;
        -h | --help)
            usage
            exit 0
            ;;
        *)
            usage >&2
            die "unknown option '$1'"
            ;;
        esac
    done
    [ "$INSTANCES" -le 100 ] || die "--instances: at most 100"

    set -o errtrace
    trap 'on_up_command_error "$LINENO" "$BASH_COMMAND"' ERR
    trap on_up_exit EXIT
    UP_STEP="checking for a running cluster"
    if [ -f "$CLUSTER_DIR/$MARKER" ] && anything_running; then
        die "a cluster already runs in $CLUSTER_DIR (scripts/cluster.sh status; scripts/cluster.sh down)"
    fi
    UP_STEP="checking prerequisites"
    check_prerequisites
    UP_STEP="preparing $CLUSTER_DIR"
    prepare_state_dir
    UP_STEP="installing packages"
    install_packages
    UP_STEP="checking ports"
    check_ports
    make_secret "$CLUSTER_DIR/jwt-secret"
    make_secret "$CLUSTER_DIR/webhook-secrets-key"
    save_settings

    UP_STEP="starting the PostgreSQL primary"
    start_primary
    UP_STEP="starting the PostgreSQL replica"
    start_replica
    if [ "$POOLER" = 1 ]; then
        UP_STEP="starting PgBouncer"
        start_pooler
    fi
    UP_STEP="starting Redis"
    start_redis
    save_settings

    # All at once: they serialise migrations on an advisory lock, and the
    # start-up is what a rolling deploy of several instances looks like.
    UP_STEP="starting the instances"
    local n
    for ((n = 1; n <= INSTANCES; n++)); do
        launch_instance "$n"
    done
    for ((n = 1; n <= INSTANCES; n++)); do
        UP_STEP="waiting for instance $n to be ready"
        wait_instance_ready "$n"
    done
    UP_STEP="starting HAProxy"
    start_haproxy
    UP_STEP="waiting for HAProxy's health checks"
    wait_balancer
    trap - ERR EXIT

    log "up: $INSTANCES instance(s) behind http://127.0.0.1:$BALANCER_PORT (state in $CLUSTER_DIR)"
    cmd_env
}

cmd_down() {
    if [ ! -e "$CLUSTER_DIR" ]; then
        log "nothing to stop ($CLUSTER_DIR does not exist)"
        return 0
    fi
    [ -f "$CLUSTER_DIR/$MARKER" ] || die "$CLUSTER_DIR is not a cluster's state directory; not touching it"
    default_settings
    # shellcheck source=/dev/null
    if [ -f "$SETTINGS" ]; then . "$SETTINGS"; fi
    # Instances first (they hold connections to everything else), in
    # parallel, each with its graceful drain; then the balancer and the data
    # tier.
    local f pid pids=()
    for f in "$CLUSTER_DIR"/instance-*.pid; do
        [ -e "$f" ] || continue
        if pid=$(live_pid "$f"); then
            kill -TERM "$pid" 2>/dev/null || true
            pids+=("$f")
        fi
    done
    if [ ${#pids[@]} -gt 0 ]; then
        log "stopping ${#pids[@]} instance(s)"
        for f in "${pids[@]}"; do
            if ! wait_exit "$f" 20; then
                pid=$(live_pid "$f") && {
                    log "$(basename "$f" .pid) did not exit after SIGTERM: SIGKILL"
                    kill -KILL "$pid" 2>/dev/null || true
                }
            fi
        done
    fi
    stop_haproxy
    stop_pooler
    if [ -f "$CLUSTER_DIR/redis/redis.pid" ]; then OWN_REDIS=1; fi
    stop_redis
    stop_postgres replica
    stop_postgres primary
    if anything_running; then
        die "something still runs; $CLUSTER_DIR is kept"
    fi
    rm -rf "$CLUSTER_DIR"
    log "down ($CLUSTER_DIR removed)"
}

cmd_env() {
    load_settings
    local urls=() n
    for ((n = 1; n <= INSTANCES; n++)); do urls+=("$(instance_url "$n")"); done
    printf 'export PRIMARY_URL=%q\n' "$(primary_url)"
    printf 'export REPLICA_URL=%q\n' "$(replica_url)"
    if [ "$POOLER" = 1 ]; then
        printf 'export POOLER_URL=%q\n' "$(pooler_url)"
    else
        # Empty without --pooler: a test of the pooler can tell it is absent
        # and skip, rather than silently testing the primary.
        printf 'export POOLER_URL=\n'
    fi
    printf 'export REDIS_URL=%q\n' "$CLUSTER_REDIS_URL"
    printf 'export BALANCER_URL=%q\n' "http://127.0.0.1:$BALANCER_PORT"
    printf 'export INSTANCE_URLS=%q\n' "${urls[*]}"
    printf 'export CLUSTER_STATS_URL=%q\n' "http://127.0.0.1:$STATS_PORT/stats"
}

cmd_status() {
    if [ ! -f "$CLUSTER_DIR/$MARKER" ]; then
        echo "cluster: down (no state in $CLUSTER_DIR)"
        return 1
    fi
    load_settings
    local bad=0 pid n code
    row() { printf '%-12s %-5s %-6s %-8s %s\n' "$@"; }
    row component state port pid detail
    if pid=$(postgres_pid primary); then
        row primary up "$PRIMARY_PORT" "$pid" "$(psql_at "$PRIMARY_PORT" postgres -tA -c 'SELECT version()' 2>/dev/null | cut -d' ' -f1-2)"
    else
        row primary down "$PRIMARY_PORT" - ""
        bad=1
    fi
    if pid=$(postgres_pid replica); then
        row replica up "$REPLICA_PORT" "$pid" "apply delay ${APPLY_DELAY_MS} ms"
    else
        row replica down "$REPLICA_PORT" - ""
        bad=1
    fi
    if [ "$POOLER" = 1 ]; then
        if pid=$(live_pid "$CLUSTER_DIR/pgbouncer/pgbouncer.pid"); then
            row pgbouncer up "$POOLER_PORT" "$pid" "transaction pooling"
        else
            row pgbouncer down "$POOLER_PORT" - ""
            bad=1
        fi
    else
        row pgbouncer off - - "not started (up --pooler)"
    fi
    if [ "$OWN_REDIS" = 1 ]; then
        if pid=$(live_pid "$CLUSTER_DIR/redis/redis.pid"); then
            row redis up "$REDIS_PORT" "$pid" "$CLUSTER_REDIS_URL"
        else
            row redis down "$REDIS_PORT" - "$CLUSTER_REDIS_URL"
            bad=1
        fi
    elif redis_answers "$CLUSTER_REDIS_URL"; then
        row redis up - - "external: $CLUSTER_REDIS_URL"
    else
        row redis down - - "external: $CLUSTER_REDIS_URL"
        bad=1
    fi
    for ((n = 1; n <= INSTANCES; n++)); do
        if pid=$(live_pid "$(instance_pidfile "$n")"); then
            code=$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$(instance_url "$n")/readyz" 2>/dev/null || true)
            row "instance-$n" up "$(instance_port "$n")" "$pid" "/readyz ${code:-no answer}"
        else
            row "instance-$n" down "$(instance_port "$n")" - ""
            bad=1
        fi
    done
    if pid=$(live_pid "$CLUSTER_DIR/haproxy.pid"); then
        row haproxy up "$BALANCER_PORT" "$pid" "stats http://127.0.0.1:$STATS_PORT/stats"
    else
        row haproxy down "$BALANCER_PORT" - ""
        bad=1
    fi

    echo
    echo "replication:"
    local primary_lsn replica_row
    primary_lsn=$(psql_at "$PRIMARY_PORT" postgres -tA -c 'SELECT pg_current_wal_lsn()' 2>/dev/null || true)
    # Time since the last replayed transaction: it also grows while the
    # primary is idle, so read it together with the LSNs.
    replica_row=$(psql_at "$REPLICA_PORT" postgres -tA -F ' ' -c \
        "SELECT coalesce(round(extract(epoch FROM now() - pg_last_xact_replay_timestamp())::numeric, 3)::text, 'n/a'),
                pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn(), pg_is_in_recovery()" 2>/dev/null || true)
    echo "  primary  pg_current_wal_lsn      ${primary_lsn:-unavailable}"
    if [ -n "$replica_row" ]; then
        local lag receive replay recovery behind=''
        read -r lag receive replay recovery <<<"$replica_row"
        if [ -n "$primary_lsn" ] && [ -n "$replay" ]; then
            behind=$(psql_at "$PRIMARY_PORT" postgres -tA -c \
                "SELECT pg_wal_lsn_diff('$primary_lsn', '$replay')::bigint" 2>/dev/null || true)
        fi
        echo "  replica  pg_last_wal_receive_lsn $receive"
        echo "  replica  pg_last_wal_replay_lsn  $replay (${behind:-?} bytes behind the primary)"
        if [ "$lag" = n/a ]; then lag="n/a (no transaction replayed since the replica started)"; else lag="$lag s"; fi
        echo "  replica  now() - pg_last_xact_replay_timestamp() = $lag; in recovery: $recovery"
    else
        echo "  replica  unavailable"
    fi
    local walsender
    walsender=$(psql_at "$PRIMARY_PORT" postgres -tA -F ' ' -c \
        "SELECT application_name, state, coalesce(replay_lag::text, '-') FROM pg_stat_replication" 2>/dev/null || true)
    echo "  primary  pg_stat_replication     ${walsender:-no standby connected}"

    echo
    echo "haproxy (http://127.0.0.1:$STATS_PORT/stats;csv):"
    local csv
    if csv=$(stats_csv 2>/dev/null) && [ -n "$csv" ]; then
        # Columns by name from the CSV header, so the layout of another
        # HAProxy version does not shift them.
        printf '%s\n' "$csv" | awk -F, '
            NR == 1 {
                sub(/^# /, "")
                for (i = 1; i <= NF; i++) col[$i] = i
                printf "  %-18s %-6s %-12s %-8s %-5s %-7s %-6s %-6s %s\n", "server", "status", "check", "code", "cur", "total", "retry", "redisp", "5xx"
                next
            }
            $1 == "conduit" && $2 != "FRONTEND" {
                printf "  %-18s %-6s %-12s %-8s %-5s %-7s %-6s %-6s %s\n", $1 "/" $2, $col["status"], $col["check_status"],
                    $col["check_code"], $col["scur"], $col["stot"], $col["wretr"], $col["wredis"], $col["hrsp_5xx"]
            }'
    else
        echo "  stats page unavailable"
        bad=1
    fi
    return "$bad"
}

cmd_kill() {
    load_settings
    check_instance_number "${1:-}"
    local pid
    pid=$(live_pid "$(instance_pidfile "$1")") || die "instance $1 is not running"
    kill -KILL "$pid"
    wait_exit "$(instance_pidfile "$1")" 10 || die "instance $1 (pid $pid) survived SIGKILL"
    rm -f "$(instance_pidfile "$1")"
    log "instance $1 (pid $pid) killed"
}

cmd_stop() {
    load_settings
    check_instance_number "${1:-}"
    local pid timeout=${CLUSTER_STOP_TIMEOUT:-30}
    pid=$(live_pid "$(instance_pidfile "$1")") || die "instance $1 is not running"
    log "instance $1 (pid $pid): SIGTERM, waiting up to ${timeout} s for it to drain and exit"
    stop_instance "$1" "$timeout" || die "instance $1 (pid $pid) still runs ${timeout} s after SIGTERM"
    log "instance $1 stopped"
}

cmd_start() {
    load_settings
    check_instance_number "${1:-}"
    launch_instance "$1"
    wait_instance_ready "$1"
}

main() {
    local command=${1:-}
    [ $# -gt 0 ] && shift
    case $command in
    up) cmd_up "$@" ;;
    down) cmd_down ;;
    status) cmd_status ;;
    env) cmd_env ;;
    kill) cmd_kill "$@" ;;
    stop) cmd_stop "$@" ;;
    start) cmd_start "$@" ;;
    -h | --help | help) usage ;;
    *)
        usage >&2
        exit 2
        ;;
    esac
}

main "$@"
