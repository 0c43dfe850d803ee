#!/usr/bin/env python3
"""The Conduit benchmark: seeds PostgreSQL with `conduit seed`, serves it with
the release binary, drives each scenario with wrk, replays the SQL of the
home pages with pgbench, and writes the figures to BENCHMARKS.md.

Run it through scripts/bench.sh, which installs wrk and builds the binary.
Standard library only.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import os
import pathlib
import platform
import random
import re
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[2]
BINARY = ROOT / "target" / "release" / "conduit"
DOCUMENTS = ROOT / "scripts" / "bench" / "documents"
LUA = ROOT / "scripts" / "bench" / "load.lua"
WORK = ROOT / "target" / "bench"
PASSWORD = "password123"
# One key for every server of a run, so tokens outlive a restart.
JWT_SECRET = secrets.token_hex(32)
# Production refuses to start without it (it seals webhook signing secrets).
WEBHOOK_SECRETS_KEY = secrets.token_hex(32)


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def document(name: str, operation: str | None = None) -> str:
    text = (DOCUMENTS / f"{name}.graphql").read_text()
    if operation is None:
        return text
    # One operation out of a file of several (writes.graphql).
    blocks = re.split(r"\n(?=mutation |query )", text)
    for block in blocks:
        if re.match(rf"(mutation|query) {operation}\b", block.strip()):
            return block.strip() + "\n"
    raise KeyError(operation)


# --- PostgreSQL ----------------------------------------------------------


class Postgres:
    def __init__(self, admin_url: str):
        self.admin_url = admin_url
        parsed = urllib.parse.urlparse(admin_url)
        self.host = parsed.hostname or "127.0.0.1"
        self.port = parsed.port or 5432
        self.user = parsed.username or "postgres"

    def url(self, database: str) -> str:
        return self.admin_url.rsplit("/", 1)[0] + "/" + database

    def sql(self, statement: str, database: str | None = None) -> str:
        url = self.url(database) if database else self.admin_url
        result = subprocess.run(
            ["psql", url, "-v", "ON_ERROR_STOP=1", "-qAtc", statement],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise RuntimeError(f"psql failed: {statement}\n{result.stderr}")
        return result.stdout.strip()

    def exists(self, database: str) -> bool:
        return self.sql(f"SELECT 1 FROM pg_database WHERE datname = '{database}'") == "1"

    def version(self) -> str:
        return self.sql("SHOW server_version")

    def log_file(self) -> pathlib.Path | None:
        """The server log of a Debian cluster on this port, if there is one."""
        try:
            out = subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True).stdout
        except FileNotFoundError:
            return None
        for line in out.splitlines():
            fields = line.split()
            if len(fields) >= 7 and fields[2] == str(self.port):
                path = pathlib.Path(fields[6])
                return path if path.exists() else None
        return None


def seed_dataset(pg: Postgres, articles: int, users: int, reseed: bool) -> tuple[str, str]:
    """A database seeded with `articles` articles, reused when it already
    holds exactly that data set. Returns its name and how it was made."""
    name = f"conduit_bench_{articles}"
    args = ["--users", str(users), "--articles", str(articles)]
    label = " ".join(args)
    if pg.exists(name) and not reseed:
        comment = pg.sql(f"SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = '{name}'")
        if comment == f"seed {label}":
            log(f"reusing database {name} ({label}); vacuuming what earlier runs wrote")
            # Earlier runs' writes (comments, favorites, sessions) would
            # otherwise be vacuumed and checkpointed during the measurements.
            pg.sql("VACUUM ANALYZE", database=name)
            pg.sql("CHECKPOINT")
            return name, "reused"
    log(f"seeding {name} ({label}); this takes a while for large sets")
    pg.sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    pg.sql(f"CREATE DATABASE {name}")
    started = time.monotonic()
    env = dict(os.environ, DATABASE_URL=pg.url(name), RUST_LOG="warn")
    subprocess.run([str(BINARY), "seed", *args], env=env, check=True)
    seconds = time.monotonic() - started
    pg.sql(f"VACUUM ANALYZE", database=name)
    pg.sql(f"COMMENT ON DATABASE {name} IS 'seed {label}'")
    log(f"seeded {name} in {seconds:.1f} s")
    return name, f"seeded in {seconds:.0f} s"


# --- the server ----------------------------------------------------------


class Server:
    def __init__(self, database_url: str, port: int, pool_size: int, extra: dict[str, str] | None = None):
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        env = dict(
            os.environ,
            DATABASE_URL=database_url,
            PORT=str(port),
            APP_ENV="production",
            JWT_SECRET=JWT_SECRET,
            WEBHOOK_SECRETS_KEY=WEBHOOK_SECRETS_KEY,
            ACCESS_TOKEN_TTL_SECS="86400",
            RUST_LOG="warn",
            DATABASE_POOL_SIZE=str(pool_size),
            # The benchmark measures serving, not the abuse limits.
            RATE_LIMIT_POINTS="0",
            SIGN_IN_LIMIT_PER_ACCOUNT="100000000",
            SIGN_IN_LIMIT_PER_ADDRESS="100000000",
            SIGN_UP_LIMIT_PER_ADDRESS="100000000",
        )
        env.update(extra or {})
        WORK.mkdir(parents=True, exist_ok=True)
        self.log_path = WORK / f"server-{port}.log"
        self.process = subprocess.Popen(
            [str(BINARY)], env=env, stdout=open(self.log_path, "w"), stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited; see {self.log_path}")
            try:
                with urllib.request.urlopen(f"{self.base}/readyz", timeout=1) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.2)
        raise RuntimeError(f"server did not become ready; see {self.log_path}")

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()

    def graphql(self, query: str, variables: dict | None = None, token: str | None = None) -> dict:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(
            f"{self.base}/graphql",
            data=body,
            headers={"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})},
        )
        with urllib.request.urlopen(request, timeout=30) as r:
            response = json.loads(r.read())
        if response.get("errors"):
            raise RuntimeError(f"GraphQL errors: {response['errors']}")
        return response["data"]

    def statements(self) -> int:
        with urllib.request.urlopen(f"{self.base}/metrics", timeout=5) as r:
            text = r.read().decode()
        match = re.search(r"^db_statements_total (\d+)", text, re.M)
        if not match:
            raise RuntimeError("db_statements_total missing from /metrics")
        return int(match.group(1))

    def reset_peak_memory(self) -> None:
        # Writing 5 resets VmHWM to the current resident set (Linux).
        pathlib.Path(f"/proc/{self.pid}/clear_refs").write_text("5")

    def memory_mib(self) -> float:
        for line in pathlib.Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS")

    def graphql_errors(self) -> int:
        """GraphQL errors served so far, of every code (`graphql_errors_total`)."""
        with urllib.request.urlopen(f"{self.base}/metrics", timeout=5) as r:
            text = r.read().decode()
        return sum(int(float(n)) for n in re.findall(r"^graphql_errors_total\{[^}]*\} (\S+)", text, re.M))

    def peak_memory_mib(self) -> float:
        for line in pathlib.Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmHWM")


# --- how soon limits and other instances answer ------------------------------
#
# The contract tests check what a saturated pool, a statement past its
# timeout, a request past its time and another instance's response cache
# answer; how soon they answer is measured here, where a loaded machine
# does not make a test fail.


class TableLock:
    """`ACCESS EXCLUSIVE` on a table, held by a psql session until released,
    so the server's queries on it wait."""

    def __init__(self, url: str, table: str):
        self.process = subprocess.Popen(
            ["psql", url, "-v", "ON_ERROR_STOP=1", "-qAt"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self.process.stdin.write(f"BEGIN; LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE; SELECT 'locked';\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline().strip()
        if line != "locked":
            raise RuntimeError(f"could not lock {table}: {line} {self.process.stderr.read()}")

    def release(self) -> None:
        self.process.stdin.write("ROLLBACK;\n\\q\n")
        self.process.stdin.flush()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise RuntimeError("psql holding a lock did not exit")


def timed_post(base: str, query: str, timeout: float = 60) -> tuple[float, int, str | None]:
    """Seconds until `query` was answered, the status, and the first error code."""
    request = urllib.request.Request(
        f"{base}/graphql", data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            status, payload = r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        status, payload = e.code, json.loads(e.read() or b"{}")
    took = time.monotonic() - started
    errors = payload.get("errors") or [{}]
    return took, status, errors[0].get("extensions", {}).get("code")


def until_lock_waiters(pg: Postgres, database: str, n: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    query = (f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{database}' "
             "AND wait_event_type = 'Lock'")
    while int(pg.sql(query)) < n:
        if time.monotonic() > deadline:
            sessions = pg.sql(f"SELECT wait_event_type, state, left(query, 80) FROM pg_stat_activity "
                              f"WHERE datname = '{database}'")
            raise RuntimeError(f"no query of the server waited for the lock within {timeout:.0f} s:\n{sessions}")
        time.sleep(0.01)


def timeouts_run(pg: Postgres, database: str, port: int, samples: int) -> dict:
    """How soon each limit answers `TIMEOUT` (the seconds past the limit
    are the cost of noticing), and how soon another instance serves a page
    that changed: `samples` of each; p50 and max in milliseconds."""
    url = pg.url(database)
    read = "{ user(username: \"bench-timeouts\") { username } }"
    figures: dict = {}

    def summary(values: list[float], limit_ms: float) -> dict:
        ms_values = sorted(v * 1000 for v in values)
        return {"limit_ms": limit_ms, "samples": len(ms_values),
                "p50_ms": statistics.median(ms_values), "max_ms": ms_values[-1]}

    # A saturated pool: the one connection waits for a lock; the next
    # request waits for it until DATABASE_ACQUIRE_TIMEOUT_MS.
    # (No job workers: they would take the one connection now and then.
    # No response cache: every sample must reach the database.)
    server = Server(url, port, 1, {"DATABASE_ACQUIRE_TIMEOUT_MS": "300", "JOB_WORKERS": "0", "RESPONSE_CACHE": "off"})
    try:
        waited = []
        for _ in range(samples):
            lock = TableLock(url, "users")
            blocked = threading.Thread(target=lambda: timed_post(server.base, read))
            blocked.start()
            try:
                until_lock_waiters(pg, database, 1)
                took, status, code = timed_post(server.base, read)
                if code != "TIMEOUT":
                    raise RuntimeError(f"a saturated pool answered {status} {code}, not TIMEOUT")
                waited.append(took)
            finally:
                lock.release()
                blocked.join()
        figures["pool_acquire"] = summary(waited, 300)
    finally:
        server.stop()

    # A statement past DATABASE_STATEMENT_TIMEOUT_MS, and a request past
    # REQUEST_TIMEOUT_SECS.
    for name, env, limit_ms in (
        ("statement", {"DATABASE_STATEMENT_TIMEOUT_MS": "300", "RESPONSE_CACHE": "off"}, 300),
        ("request", {"REQUEST_TIMEOUT_SECS": "1", "RESPONSE_CACHE": "off"}, 1000),
    ):
        server = Server(url, port, 4, env)
        try:
            answered = []
            for _ in range(samples):
                lock = TableLock(url, "users")
                try:
                    took, status, code = timed_post(server.base, read)
                finally:
                    lock.release()
                if code != "TIMEOUT":
                    raise RuntimeError(f"a {name} past its timeout answered {status} {code}, not TIMEOUT")
                answered.append(took)
            figures[f"{name}_timeout"] = summary(answered, limit_ms)
        finally:
            server.stop()

    # Another instance's response cache: a page both instances keep, then
    # a write (as an operator's SQL, heard through the events like any
    # other); how long until the other instance serves the new page.
    slug = pg.sql("SELECT slug FROM articles WHERE deleted_at IS NULL ORDER BY created_at LIMIT 1", database=database)
    page = f'{{ article(slug: "{slug}") {{ title description }} }}'
    servers = [Server(url, port, 4), Server(url, port + 1, 4)]
    try:
        stale = []
        for i in range(samples):
            for s in servers:
                s.graphql(page)
                s.graphql(page)
            description = f"bench {secrets.token_hex(4)} {i}"
            pg.sql(f"UPDATE articles SET description = '{description}' WHERE slug = '{slug}'", database=database)
            written = time.monotonic()
            deadline = written + 30
            while servers[1].graphql(page)["article"]["description"] != description:
                if time.monotonic() > deadline:
                    raise RuntimeError("another instance still served the old page 30 s after the write")
                time.sleep(0.002)
            stale.append(time.monotonic() - written)
        figures["other_instance"] = summary(stale, 0)
    finally:
        for s in servers:
            s.stop()
    for name, f in figures.items():
        log(f"timeouts: {name}: p50 {f['p50_ms']:.0f} ms, max {f['max_ms']:.0f} ms ({f['samples']} samples)")
    return figures


# --- request sets ------------------------------------------------------------


def body(query: str, variables: dict) -> str:
    return json.dumps({"query": query, "variables": variables}, separators=(",", ":"))


class Fixtures:
    """Tokens of seeded readers and ids of articles and authors to act on."""

    def __init__(self, server: Server, readers: int):
        sign_in = document("sign_in")
        self.tokens = []
        for i in range(1, readers + 1):
            data = server.graphql(sign_in, {"email": f"user{i}@example.com", "password": PASSWORD})
            token = data["signInUser"]["token"]
            if not token:
                raise RuntimeError(f"user{i} could not sign in: {data}")
            self.tokens.append(token)
        listing = """query($after: String) { articles(first: 100, after: $after) {
            edges { node { id slug author { id } } } pageInfo { endCursor } } }"""
        self.articles: list[tuple[str, str]] = []
        self.authors: set[str] = set()
        after = None
        for _ in range(5):
            page = server.graphql(listing, {"after": after})["articles"]
            for edge in page["edges"]:
                self.articles.append((edge["node"]["id"], edge["node"]["slug"]))
                self.authors.add(edge["node"]["author"]["id"])
            after = page["pageInfo"]["endCursor"]
        self.author_list = sorted(self.authors)


def request_lines(scenario: str, fx: Fixtures, first: int = 20) -> list[str]:
    rng = random.Random(scenario)
    home_anonymous = document("home_anonymous")
    home_signed_in = document("home_signed_in")
    feed = document("feed")
    article = document("article")

    def read(kind: str) -> str:
        token = rng.choice(fx.tokens)
        if kind == "a":
            return f"-\t{body(home_anonymous, {'first': first})}"
        if kind == "b":
            return f"{token}\t{body(home_signed_in, {'first': first})}"
        if kind == "c":
            return f"{token}\t{body(feed, {'first': first})}"
        return f"{token}\t{body(article, {'slug': rng.choice(fx.articles)[1]})}"

    if scenario in ("a", "b", "c", "d"):
        count = 1 if scenario == "a" else 2000
        return [read(scenario) for _ in range(count)]
    if scenario == "e":
        writes = {
            "AddComment": lambda: {"articleId": rng.choice(fx.articles)[0], "body": f"A benchmark comment {rng.random()}"},
            "Favorite": lambda: {"id": rng.choice(fx.articles)[0]},
            "Unfavorite": lambda: {"id": rng.choice(fx.articles)[0]},
            "Follow": lambda: {"id": rng.choice(fx.author_list)},
            "Unfollow": lambda: {"id": rng.choice(fx.author_list)},
        }
        mutations = {name: document("writes", name) for name in writes}
        lines = []
        for i in range(5000):
            if i % 5 == 0:  # 20% writes
                name = rng.choice(sorted(writes))
                lines.append(f"{rng.choice(fx.tokens)}\t{body(mutations[name], writes[name]())}")
            else:
                lines.append(read(rng.choice("abcd")))
        rng.shuffle(lines)
        return lines
    if scenario == "f":
        sign_in = document("sign_in")
        return [
            f"-\t{body(sign_in, {'email': f'user{i}@example.com', 'password': PASSWORD})}"
            for i in range(1, 1001)
        ]
    raise KeyError(scenario)


def check_lines(server: Server, lines: list[str], samples: int = 20) -> None:
    """Sends a few of the requests once: any GraphQL error stops the run,
    so the figures never time error responses."""
    for line in random.Random(1).sample(lines, min(samples, len(lines))):
        token, payload = line.split("\t", 1)
        payload = json.loads(payload)
        data = server.graphql(payload["query"], payload["variables"], None if token == "-" else token)
        for value in data.values():
            if isinstance(value, dict) and value.get("errors"):
                raise RuntimeError(f"payload errors: {value['errors']}")


# --- load ------------------------------------------------------------------


def wrk(
    server: Server,
    lines: list[str],
    connections: int,
    seconds: int,
    threads: int = 2,
    tolerate_timeouts: bool = False,
    tolerate_errors: bool = False,
) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, dir=WORK) as f:
        f.write("\n".join(lines) + "\n")
        path = f.name
    try:
        result = subprocess.run(
            [
                "wrk", "-t", str(min(threads, connections)), "-c", str(connections), "-d", f"{seconds}s",
                "--timeout", "10s", "-s", str(LUA), f"{server.base}/graphql",
            ],
            env=dict(os.environ, BENCH_REQUESTS=path),
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        os.unlink(path)
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    figures["rps"] = figures["requests"] / (figures["duration_us"] / 1e6)
    errors = sum(v for k, v in figures.items() if k.startswith("errors_") and not (tolerate_timeouts and k == "errors_timeout"))
    figures["errors"] = errors
    if errors and not tolerate_errors:
        raise RuntimeError(f"wrk saw {errors} errors: {figures}")
    return figures


def measure(server: Server, lines: list[str], connections: int, seconds: int, warmup: int) -> dict:
    if warmup:
        wrk(server, lines, connections, warmup)
    server.reset_peak_memory()
    before = server.statements()
    figures = wrk(server, lines, connections, seconds)
    figures["statements_per_request"] = (server.statements() - before) / figures["requests"]
    figures["peak_rss_mib"] = server.peak_memory_mib()
    return figures


def soak(server: Server, lines: list[str], connections: int, seconds: int) -> dict:
    """The mixed scenario for a long time, one wrk run a minute: errors of
    every kind are counted rather than fatal, and the server's resident
    memory is read after each minute."""
    graphql_before = server.graphql_errors()
    minutes = []
    elapsed = 0
    while elapsed < seconds:
        chunk = min(60, seconds - elapsed)
        figures = wrk(server, lines, connections, chunk, tolerate_errors=True)
        elapsed += chunk
        minutes.append({
            "at_s": elapsed,
            "requests": figures["requests"],
            "rps": figures["rps"],
            "p99_us": figures["p99_us"],
            "errors": figures["errors"],
            "rss_mib": server.memory_mib(),
        })
        log(f"  soak {elapsed} s: {figures['rps']:.0f} req/s, p99 {ms(figures['p99_us'])} ms, "
            f"{figures['errors']} errors, RSS {minutes[-1]['rss_mib']:.1f} MiB")
    return {
        "connections": connections,
        "seconds": seconds,
        "minutes": minutes,
        "requests": sum(m["requests"] for m in minutes),
        "http_errors": sum(m["errors"] for m in minutes),
        "graphql_errors": server.graphql_errors() - graphql_before,
    }


# --- pgbench replay ----------------------------------------------------------

ENTRY = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")
PARAM = re.compile(r"\$(\d+) = ('(?:[^']|'')*'|NULL)")


def capture_statements(pg: Postgres, database: str, pool_port: int, line: str) -> list[str]:
    """The SQL one request of `line` sends, with its parameters inlined,
    read from PostgreSQL's own statement log."""
    log_file = pg.log_file()
    if log_file is None:
        raise RuntimeError("cannot find the PostgreSQL server log (pg_lsclusters)")
    pg.sql(f"ALTER DATABASE {database} SET log_statement = 'all'")
    server = Server(pg.url(database), pool_port, pool_size=1)
    try:
        token, payload = line.split("\t", 1)
        payload = json.loads(payload)
        call = lambda: server.graphql(payload["query"], payload["variables"], None if token == "-" else token)
        call()  # warm: prepared statements exist, the pool's one connection is open
        time.sleep(0.5)
        offset = log_file.stat().st_size
        call()
        time.sleep(1.0)
        with open(log_file, errors="replace") as f:
            f.seek(offset)
            text = f.read()
    finally:
        server.stop()
        pg.sql(f"ALTER DATABASE {database} RESET log_statement")
    # Entries start with a timestamp; continuation lines with a tab.
    entries: list[str] = []
    for raw in text.splitlines():
        if ENTRY.match(raw):
            entries.append(raw)
        elif entries:
            entries.append(entries.pop() + "\n" + raw.lstrip("\t"))
    statements: list[str] = []
    marker = f"@{database} "
    for entry in entries:
        if marker not in entry:
            continue
        match = re.search(r"LOG:\s+(?:execute [^:]*|statement): (.*)", entry, re.S)
        if match:
            statements.append(match.group(1).strip())
            continue
        match = re.search(r"DETAIL:\s+parameters: (.*)", entry, re.S)
        if match and statements:
            values = {int(n): v for n, v in PARAM.findall(match.group(1))}
            statements[-1] = re.sub(
                r"\$(\d+)", lambda m: values.get(int(m.group(1)), m.group(0)), statements[-1]
            )
    return statements


def pgbench(pg: Postgres, database: str, statements: list[str], clients: int, seconds: int) -> tuple[float, dict]:
    """Transactions per second, and CPU microseconds per transaction of
    PostgreSQL and of pgbench itself, sampled from the middle of the run
    (pgbench's backends exit with it)."""
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False, dir=WORK) as f:
        for statement in statements:
            f.write(statement.replace("\n", " ") + ";\n")
        script = f.name
    process = subprocess.Popen(
        [
            "pgbench", "-n", "-M", "prepared", "-c", str(clients), "-j", "2", "-T", str(seconds),
            "-h", pg.host, "-p", str(pg.port), "-U", pg.user, "-f", script, database,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(1)
    before, started = cpu_ticks(), time.monotonic()
    time.sleep(max(1, seconds - 2))
    after, window = cpu_ticks(), time.monotonic() - started
    stdout, stderr = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"pgbench failed:\n{stderr}")
    match = re.search(r"tps = ([\d.]+) \(without initial connection time\)", stdout)
    if not match:
        raise RuntimeError(f"no tps in pgbench output:\n{stdout}")
    tps = float(match.group(1))
    cpu = cpu_per_unit(before, after, tps * window, {"postgres": is_postgres, "pgbench": lambda pid, comm: comm == "pgbench"})
    return tps, cpu


# --- CPU accounting ----------------------------------------------------------

TICKS = os.sysconf("SC_CLK_TCK")


def is_postgres(pid: int, comm: str) -> bool:
    return comm == "postgres" or comm.startswith("postgres:")


def cpu_ticks() -> dict[int, tuple[str, int]]:
    """User plus system CPU ticks of every process, by pid (Linux /proc)."""
    ticks = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            comm = pathlib.Path(f"/proc/{entry}/comm").read_text().strip()
            fields = pathlib.Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks[int(entry)] = (comm, int(fields[11]) + int(fields[12]))
    return ticks


def cpu_per_unit(before: dict, after: dict, units: float, roles: dict) -> dict:
    """CPU microseconds per unit of work, by role, over processes alive
    at both samples."""
    totals = dict.fromkeys(roles, 0)
    for pid, (comm, t) in after.items():
        if pid not in before or before[pid][0] != comm:
            continue
        for role, matches in roles.items():
            if matches(pid, comm):
                totals[role] += t - before[pid][1]
                break
    return {role: ticks / TICKS / max(units, 1) * 1e6 for role, ticks in totals.items()}


def plan_nodes(pg: Postgres, database: str, statements: list[str]) -> list[str]:
    """Scan nodes of each statement's plan (EXPLAIN, not ANALYZE)."""
    nodes = []
    for statement in statements:
        if not statement.lstrip().upper().startswith("SELECT"):
            continue
        plan = json.loads(pg.sql(f"EXPLAIN (FORMAT JSON) {statement}", database=database))
        stack = [plan[0]["Plan"]]
        while stack:
            node = stack.pop()
            if "Scan" in node["Node Type"]:
                relation = node.get("Relation Name") or node.get("Index Name") or ""
                nodes.append(f"{node['Node Type']} on {relation}".strip())
            stack.extend(node.get("Plans", []))
    return nodes


# --- the run -----------------------------------------------------------------

SCENARIOS = {
    "a": "home page, anonymous (20 articles, author, tags, favoritesCount)",
    "b": "home page, signed in (+ viewerHasFavorited, author followedByViewer)",
    "c": "personal feed, signed in",
    "d": "article page with comments and their authors",
    "e": "mix: 80% reads (a-d), 20% writes (addComment, favorite/unfavorite, follow/unfollow)",
    "f": "sign-in (argon2id verification, new session)",
}


def ms(us: float) -> str:
    return f"{us / 1000:.2f}"


def machine() -> dict:
    cpu = "unknown"
    for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kib = int(re.search(r"MemTotal:\s+(\d+)", pathlib.Path("/proc/meminfo").read_text()).group(1))
    run = lambda *cmd: subprocess.run(cmd, capture_output=True, text=True).stdout.strip()
    return {
        "cpu": f"{os.cpu_count()} × {cpu}",
        "memory": f"{mem_kib / 1024 / 1024:.0f} GiB",
        "os": platform.platform(),
        "rustc": run("rustc", "--version"),
        "wrk": (run("wrk", "-v") or subprocess.run(["wrk", "-v"], capture_output=True, text=True).stderr).splitlines()[0],
        "pgbench": run("pgbench", "--version"),
        "commit": run("git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--pool-size", type=int, default=int(os.environ.get("BENCH_POOL_SIZE", "10")))
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--articles", type=int, default=100_000)
    parser.add_argument("--scaling", default="10000,100000,1000000", help="article counts for the scaling table; empty skips it")
    parser.add_argument("--scenarios", default="abcdef")
    parser.add_argument("--rounds", type=int, default=3, help="server/pgbench turns for the ratio")
    parser.add_argument("--reseed", action="store_true")
    parser.add_argument("--soak", type=int, default=0, help="seconds of scenario (e) at the end, one wrk run a minute; 0 skips it")
    parser.add_argument("--soak-connections", type=int, default=32)
    parser.add_argument("--subscriptions", type=int, default=0,
                        help="seconds of the subscription run (10,000 sockets over 2 instances, 100 comments/s); 0 skips it")
    parser.add_argument("--subscription-articles", type=int, default=100)
    parser.add_argument("--subscribers-per-article", type=int, default=100)
    parser.add_argument("--comment-rate", type=int, default=100)
    parser.add_argument("--webhooks", type=int, default=0,
                        help="seconds of scenario (e) with webhooks off and on, then a queue drain; 0 skips it")
    parser.add_argument("--webhook-drain", type=int, default=10_000, help="deliveries in the queue-throughput drain")
    parser.add_argument("--retention", type=int, default=0,
                        help="soft-deleted articles purged while the home page is under load; 0 skips it")
    parser.add_argument("--timeouts", type=int, default=5,
                        help="samples of how soon each timeout answers and another instance serves a write; 0 skips it")
    parser.add_argument("--port", type=int, default=18400)
    parser.add_argument("--output", default=str(ROOT / "BENCHMARKS.md"))
    parser.add_argument("--json", default=str(WORK / "results.json"))
    args = parser.parse_args()

    WORK.mkdir(parents=True, exist_ok=True)
    pg = Postgres(args.database_url)
    results: dict = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "postgres": pg.version(),
        "settings": {k: getattr(args, k) for k in ("connections", "seconds", "warmup", "pool_size", "users", "articles", "rounds")},
    }
    database, how = seed_dataset(pg, args.articles, args.users, args.reseed)
    results["dataset"] = {
        "database": database,
        "how": how,
        **{t: int(pg.sql(f"SELECT count(*) FROM {t}", database=database)) for t in ("users", "articles", "article_tags", "follows", "favorites", "comments")},
    }

    server = Server(pg.url(database), args.port, args.pool_size)
    try:
        fixtures = Fixtures(server, readers=64)
        lines = {s: request_lines(s, fixtures) for s in sorted(set(args.scenarios) | ({"e"} if args.soak else set()))}
        for s in lines:
            check_lines(server, lines[s])
        results["scenarios"] = {}
        for s in args.scenarios:
            log(f"scenario ({s}) {SCENARIOS[s]}: {args.connections} connections, {args.seconds} s")
            figures = measure(server, lines[s], args.connections, args.seconds, args.warmup)
            results["scenarios"][s] = figures
            log(f"  {figures['rps']:.0f} req/s, p50 {ms(figures['p50_us'])} ms, p99 {ms(figures['p99_us'])} ms, "
                f"{figures['statements_per_request']:.2f} statements/request, peak {figures['peak_rss_mib']:.1f} MiB")

        # Login flood: (a) alone, then (a) while (f) runs at full concurrency.
        if "a" in args.scenarios and "f" in args.scenarios:
            reader_connections = max(1, args.connections // 4)
            log(f"login flood: (a) at {reader_connections} connections, alone and beside (f) at {args.connections}")
            alone = measure(server, lines["a"], reader_connections, args.seconds, args.warmup)
            flood_result: dict = {}
            flood = threading.Thread(
                # The flood's own sign-ins may wait past wrk's 10 s timeout:
                # hashing yields to reads by design. They are counted.
                target=lambda: flood_result.update(
                    wrk(server, lines["f"], args.connections, args.seconds + 4, tolerate_timeouts=True)
                )
            )
            flood.start()
            time.sleep(2)
            during = wrk(server, lines["a"], reader_connections, args.seconds)
            flood.join()
            results["flood"] = {"connections": reader_connections, "alone": alone, "during": during, "sign_in": flood_result}
            log(f"  p99 alone {ms(alone['p99_us'])} ms, during the flood {ms(during['p99_us'])} ms "
                f"({during['p99_us'] / alone['p99_us']:.2f}x); sign-ins {flood_result['rps']:.0f}/s, "
                f"{flood_result['errors_timeout']} waited past 10 s")

        # The limit: the same SQL straight from pgbench. The host's speed
        # drifts by a third within minutes, so the server and pgbench take
        # turns, round after round, and the median of the rounds' ratios is
        # the figure.
        results["pgbench"] = {}
        for s in "ab":
            if s not in args.scenarios:
                continue
            statements = capture_statements(pg, database, args.port + 1, lines[s][0])
            (WORK / f"pgbench-{s}.sql").write_text("".join(st.replace("\n", " ") + ";\n" for st in statements))
            rounds = []
            for i in range(args.rounds):
                before, children = cpu_ticks(), os.times()
                figures = wrk(server, lines[s], args.connections, args.seconds)
                after, children_after = cpu_ticks(), os.times()
                rps = figures["rps"]
                server_cpu = cpu_per_unit(
                    before, after, figures["requests"],
                    {"server": lambda pid, comm: pid == server.pid, "postgres": is_postgres},
                )
                server_cpu["wrk"] = (
                    (children_after.children_user + children_after.children_system)
                    - (children.children_user + children.children_system)
                ) / figures["requests"] * 1e6
                tps, pgbench_cpu = pgbench(pg, database, statements, args.connections, args.seconds)
                rounds.append({"rps": rps, "tps": tps, "ratio": rps / tps, "server_cpu_us": server_cpu, "pgbench_cpu_us": pgbench_cpu})
                log(f"pgbench ({s}) round {i + 1}: server {rps:.0f} req/s, pgbench {tps:.0f} tps, ratio {rps / tps:.2f}; "
                    f"CPU us per request: server {server_cpu['server']:.0f}, its PostgreSQL {server_cpu['postgres']:.0f}, "
                    f"wrk {server_cpu['wrk']:.0f}; per transaction: PostgreSQL {pgbench_cpu['postgres']:.0f}, "
                    f"pgbench {pgbench_cpu['pgbench']:.0f}")
            ratio = statistics.median(r["ratio"] for r in rounds)
            cpu = {
                key: statistics.median(r[side][role] for r in rounds)
                for key, side, role in (
                    ("server", "server_cpu_us", "server"),
                    ("server_postgres", "server_cpu_us", "postgres"),
                    ("wrk", "server_cpu_us", "wrk"),
                    ("pgbench_postgres", "pgbench_cpu_us", "postgres"),
                    ("pgbench", "pgbench_cpu_us", "pgbench"),
                )
            }
            results["pgbench"][s] = {"statements": len(statements), "rounds": rounds, "ratio": ratio, "cpu_us": cpu}
            log(f"pgbench ({s}): {len(statements)} statements; median server/pgbench = {ratio:.2f}; "
                f"median CPU us: server {cpu['server']:.0f} vs PostgreSQL under pgbench {cpu['pgbench_postgres']:.0f}")
        if args.soak:
            log(f"soak: scenario (e) at {args.soak_connections} connections for {args.soak} s")
            results["soak"] = soak(server, lines["e"], args.soak_connections, args.soak)
            sk = results["soak"]
            log(f"soak: {sk['requests']} requests, {sk['http_errors']} HTTP errors, {sk['graphql_errors']} GraphQL errors; "
                f"RSS {sk['minutes'][0]['rss_mib']:.1f} MiB after the first minute, {sk['minutes'][-1]['rss_mib']:.1f} at the end")
    finally:
        server.stop()

    if args.timeouts:
        results["timeouts"] = timeouts_run(pg, database, args.port + 3, args.timeouts)
    if args.subscriptions:
        results["subscriptions"] = subscription_run(pg, database, args)
    if args.webhooks or args.retention:
        results["background"] = background_run(pg, database, args)

    # Flat scaling: (a), (b), (c) at each size; statements per page size.
    results["scaling"] = {}
    sizes = [int(n) for n in args.scaling.split(",") if n.strip()]
    for articles in sizes:
        database_n, how_n = seed_dataset(pg, articles, args.users, args.reseed)
        server = Server(pg.url(database_n), args.port + 2, args.pool_size)
        try:
            fx = Fixtures(server, readers=64)
            row: dict = {"how": how_n, "scenarios": {}, "statements_by_page_size": {}}
            for s in "abc":
                s_lines = request_lines(s, fx)
                check_lines(server, s_lines)
                figures = measure(server, s_lines, args.connections, max(5, args.seconds // 2), args.warmup)
                row["scenarios"][s] = figures
                log(f"{articles} articles, ({s}): p50 {ms(figures['p50_us'])} ms, p99 {ms(figures['p99_us'])} ms, {figures['rps']:.0f} req/s")
                counts = []
                for first in (1, 20, 100):
                    token, payload = request_lines(s, fx, first=first)[0].split("\t", 1)
                    payload = json.loads(payload)
                    before = server.statements()
                    server.graphql(payload["query"], payload["variables"], None if token == "-" else token)
                    counts.append(server.statements() - before)
                row["statements_by_page_size"][s] = counts
        finally:
            server.stop()
        row["plans"] = {}
        for s in "abc":
            statements = capture_statements(pg, database_n, args.port + 1, request_lines(s, fx)[0])
            row["plans"][s] = plan_nodes(pg, database_n, statements)
        seq_scanned = {n.split(" on ", 1)[1] for nodes in row["plans"].values() for n in nodes if n.startswith("Seq Scan")}
        row["seq_scan_rows"] = {t: int(pg.sql(f"SELECT count(*) FROM {t}", database=database_n)) for t in sorted(seq_scanned)}
        results["scaling"][articles] = row

    for part in ("soak", "subscriptions", "background"):
        if results.get(part):
            results[part].update(date=results["date"], commit=results["machine"]["commit"])
    pathlib.Path(args.json).write_text(json.dumps(results, indent=2))
    if not results.get("scenarios") and not results.get("scaling"):
        # A run of the soak or the subscriptions alone replaces just its section.
        if results.get("soak"):
            replace_section(pathlib.Path(args.output), SOAK_START, SOAK_END, soak_section(results["soak"]))
        if results.get("subscriptions"):
            replace_section(pathlib.Path(args.output), SUBS_START, SUBS_END, subscription_section(results["subscriptions"]))
        if results.get("background"):
            replace_section(pathlib.Path(args.output), JOBS_START, JOBS_END, background_section(results["background"]))
    else:
        write_report(results, pathlib.Path(args.output))
    log(f"wrote {args.output} and {args.json}")
    return 0


SOAK_START, SOAK_END = "<!-- soak -->", "<!-- /soak -->"


def soak_section(sk: dict) -> list[str]:
    first, last = sk["minutes"][0]["rss_mib"], sk["minutes"][-1]["rss_mib"]
    out = [SOAK_START, "## Soak\n"]
    out.append(f"Scenario (e), the mix of reads and writes, at {sk['connections']} connections for {sk['seconds']} s "
               f"({sk.get('date', '')}, commit `{sk.get('commit', '')}`), as one wrk run a minute; errors are counted, "
               "not fatal, and the server's resident memory (`VmRSS`) is read after each minute.\n")
    out.append("| After | Requests/s | p99 ms | HTTP errors | RSS MiB |")
    out.append("|---:|---:|---:|---:|---:|")
    for m in sk["minutes"]:
        out.append(f"| {m['at_s']} s | {m['rps']:,.0f} | {ms(m['p99_us'])} | {m['errors']} | {m['rss_mib']:.1f} |")
    out.append("")
    out.append(f"- Requests: {sk['requests']:,}; errors: **{sk['http_errors']}** at the HTTP level (status, connect, "
               f"read, write, timeout) and **{sk['graphql_errors']}** GraphQL errors (`graphql_errors_total`); target 0.")
    out.append(f"- RSS after the first minute {first:.1f} MiB, at the end {last:.1f} MiB: "
               f"**{(last - first) / first * 100:+.1f}%**; target within 10%.")
    out.append(SOAK_END)
    out.append("")
    return out


def replace_section(path: pathlib.Path, start: str, end: str, lines: list[str]) -> None:
    """Puts a section (between its `start` and `end` markers) into the
    report, leaving the rest."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    section = "\n".join(lines)
    if start in text and end in text:
        head, rest = text.split(start, 1)
        tail = rest.split(end, 1)[1].lstrip("\n")
        text = head + section + "\n" + tail
    elif "## Reproduce" in text:
        head, tail = text.split("## Reproduce", 1)
        text = head + section + "\n## Reproduce" + tail
    else:
        text += "\n" + section + "\n"
    path.write_text(text)


# --- subscriptions -------------------------------------------------------------

SUBS_START, SUBS_END = "<!-- subscriptions -->", "<!-- /subscriptions -->"
WS_CLIENT = ROOT / "scripts" / "bench" / "ws"


def subscription_run(pg: Postgres, database: str, args) -> dict:
    """Two instances on the seeded database; the load client opens
    articles x subscribers sockets over both, each watching one article's
    comments, then writes comments at `comment_rate` a second through the
    first instance. The home page (scenario a) is measured on the first
    instance alone, then while the comments stream."""
    if not (WS_CLIENT / "node_modules").exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=WS_CLIENT, check=True)
    extra = {"MAX_WEBSOCKETS": "100000", "MAX_WEBSOCKETS_PER_CLIENT": "100000", "MAX_SUBSCRIPTIONS_PER_SOCKET": "10"}
    servers = [Server(pg.url(database), args.port + 10 + i, args.pool_size, extra) for i in range(2)]
    try:
        fx = Fixtures(servers[0], readers=64)
        home = request_lines("a", fx)
        check_lines(servers[0], home)
        window = max(5, min(10, args.subscriptions - 2))
        log(f"subscriptions: the home page alone on one instance, {args.soak_connections} connections, {window} s")
        alone = measure(servers[0], home, args.soak_connections, window, args.warmup)
        rss_before = [s.memory_mib() for s in servers]
        settings = {
            "urls": [s.base for s in servers],
            "articles": args.subscription_articles,
            "perArticle": args.subscribers_per_article,
            "rate": args.comment_rate,
            "seconds": args.subscriptions,
            "writers": [{"email": f"user{i}@example.com", "password": "password123"} for i in range(1, 11)],
        }
        client = subprocess.Popen(
            ["node", str(WS_CLIENT / "load.mjs"), json.dumps(settings)],
            stdout=subprocess.PIPE, text=True,
        )
        figures: dict = {"home_alone": alone, "rss_before_mib": rss_before}
        during: dict = {}
        runner = None
        for line in client.stdout:
            message = json.loads(line)
            if message["phase"] == "ready":
                time.sleep(2)
                figures["ready"] = message
                figures["rss_idle_mib"] = [s.memory_mib() for s in servers]
                log(f"  {message['subscriptions']} subscriptions open in {message['open_seconds']:.1f} s; "
                    f"RSS {figures['rss_before_mib']} -> {figures['rss_idle_mib']} MiB")
            elif message["phase"] == "streaming":
                runner = threading.Thread(
                    target=lambda: (time.sleep(1), during.update(wrk(servers[0], home, args.soak_connections, window)))
                )
                runner.start()
            elif message["phase"] == "done":
                figures["load"] = message
        if client.wait() != 0:
            raise RuntimeError("the subscription load client failed")
        if runner:
            runner.join()
        figures["home_during"] = during
        figures["rss_after_mib"] = [s.memory_mib() for s in servers]
        load = figures["load"]
        log(f"  {load['comments']} comments, {load['expected']} deliveries expected, {load['received']} received, "
            f"{load['lost']} lost, {load['duplicated']} duplicated; lag p50 {load['lag_ms']['p50']} ms, "
            f"p99 {load['lag_ms']['p99']} ms; home p99 {ms(alone['p99_us'])} ms alone, {ms(during['p99_us'])} ms during")
        figures["settings"] = settings | {"writers": len(settings["writers"])}
        figures["connections"] = args.soak_connections
        return figures
    finally:
        for s in servers:
            s.stop()


def subscription_section(sb: dict) -> list[str]:
    load, st = sb["load"], sb["settings"]
    subs = load["subscriptions"]
    per_instance = subs / len(st["urls"])
    mib_per_1000 = [
        (idle - before) / per_instance * 1000 for idle, before in zip(sb["rss_idle_mib"], sb["rss_before_mib"])
    ]
    alone, during = sb["home_alone"], sb["home_during"]
    rate = load["expected"] / load["write_seconds"] if load["write_seconds"] else 0
    out = [SUBS_START, "## Subscriptions\n"]
    out.append(f"{subs:,} sockets over {len(st['urls'])} instances on one database (`{sb.get('date', '')}`, commit "
               f"`{sb.get('commit', '')}`), each subscribed to the comments of one of {st['articles']} articles "
               f"({st['perArticle']} subscribers each); {st['rate']} comments/s for {st['seconds']} s written through "
               "the first instance by 10 seeded users; the load client is `scripts/bench/ws/load.mjs` (Node, one "
               "process), on the same machine. Lag is from the comment's `createdAt` (PostgreSQL's clock, at the "
               "start of the writing transaction) to its arrival at the client.\n")
    out.append("| Figure | Value | Target |")
    out.append("|---|---:|---|")
    out.append(f"| subscriptions open, time to open them | {subs:,}, {sb['ready']['open_seconds']:.1f} s | 10,000 |")
    out.append(f"| comments written | {load['comments']:,} ({load['write_failures']} failed) | |")
    out.append(f"| deliveries expected, received | {load['expected']:,}, {load['received']:,} ({rate:,.0f}/s) | 10,000/s |")
    out.append(f"| lost | **{load['lost']}** | 0 |")
    out.append(f"| duplicated | **{load['duplicated']}** | 0 |")
    out.append(f"| lag p50 / p90 / p99 / max, ms | {load['lag_ms']['p50']} / {load['lag_ms']['p90']} / "
               f"**{load['lag_ms']['p99']}** / {load['lag_ms']['max']} | p99 < 100 |")
    out.append(f"| server RSS per 1,000 idle subscriptions | "
               f"{' and '.join(f'{m:.1f}' for m in mib_per_1000)} MiB | < 20 MiB |")
    out.append(f"| home page (a) p99 alone, during | {ms(alone['p99_us'])} ms, {ms(during['p99_us'])} ms: "
               f"**{during['p99_us'] / alone['p99_us']:.2f}x** | within 1.5x |")
    out.append("")
    out.append(f"Server RSS (MiB) before the sockets {sb['rss_before_mib']}, with them idle {sb['rss_idle_mib']}, "
               f"after the stream {sb['rss_after_mib']}. Home page: {alone['rps']:,.0f} req/s alone, "
               f"{during['rps']:,.0f} during, at {sb['connections']} wrk connections.")
    out.append(SUBS_END)
    out.append("")
    return out


def write_report(r: dict, path: pathlib.Path) -> None:
    m, st, ds = r["machine"], r["settings"], r["dataset"]
    out = []
    w = out.append
    w("# Benchmarks\n")
    w("Figures from `scripts/bench.sh` (see \"Reproduce\" below). Timings vary with the machine and")
    w("whatever else it runs; compare ratios and medians from one run, not across machines.\n")
    w("## Setup\n")
    w(f"- Date: {r['date']}; commit `{m['commit']}`")
    w(f"- Machine: {m['cpu']}, {m['memory']}; {m['os']}")
    w(f"- Load generator, database and server share the machine: {m['wrk']}; PostgreSQL {r['postgres']}; {m['pgbench']}; {m['rustc']}")
    w(f"- Server: release build, `DATABASE_POOL_SIZE={st['pool_size']}`, rate limits off, `APP_ENV=production`")
    w(f"- Load: {st['connections']} connections, {st['seconds']} s per scenario after a {st['warmup']} s warm-up; "
      "readers are 64 seeded users picked at random per request")
    w(f"- Data set (`conduit seed --users {st['users']} --articles {st['articles']}`, {ds['how']}): "
      f"{ds['users']:,} users, {ds['articles']:,} articles, {ds['article_tags']:,} tag links, {ds['follows']:,} follows, "
      f"{ds['favorites']:,} favorites, {ds['comments']:,} comments\n")
    w("## Scenarios\n")
    w("| Scenario | Requests/s | p50 ms | p99 ms | SQL statements / request | Peak RSS MiB |")
    w("|---|---:|---:|---:|---:|---:|")
    for s, f in r.get("scenarios", {}).items():
        w(f"| ({s}) {SCENARIOS[s]} | {f['rps']:,.0f} | {ms(f['p50_us'])} | {ms(f['p99_us'])} | "
          f"{f['statements_per_request']:.2f} | {f['peak_rss_mib']:.1f} |")
    w("")
    w("Statements are counted at the server's connections (`db_statements_total` on `/metrics`) over the")
    w("measured window and divided by the requests served; peak RSS is the server's `VmHWM`, reset before")
    w("each scenario. The documents are in `scripts/bench/documents/`.\n")
    if r.get("pgbench"):
        w("## Against PostgreSQL alone\n")
        w("The SQL one request sends, captured from PostgreSQL's statement log with its parameters, replayed")
        w(f"by `pgbench -M prepared` with the same number of clients ({st['connections']}) on the same database.\n")
        w(f"The server and pgbench take turns, {st.get('rounds', 1)} rounds of {st['seconds']} s each, and the ratio")
        w("is the median of the rounds' ratios: this host's speed drifts too much for runs minutes apart.\n")
        w("| Scenario | Statements | Server requests/s, by round | pgbench transactions/s, by round | Ratio by round | Median ratio |")
        w("|---|---:|---|---|---|---:|")
        for s, p in r["pgbench"].items():
            rps = " / ".join(f"{x['rps']:,.0f}" for x in p["rounds"])
            tps = " / ".join(f"{x['tps']:,.0f}" for x in p["rounds"])
            ratios = " / ".join(f"{x['ratio']:.2f}" for x in p["rounds"])
            w(f"| ({s}) | {p['statements']} | {rps} | {tps} | {ratios} | **{p['ratio']:.2f}** |")
        w("\nThe replayed scripts are written to `target/bench/pgbench-a.sql` and `pgbench-b.sql`.\n")
        w("Where the CPU goes: microseconds of CPU per request (server rounds) and per transaction (pgbench")
        w("rounds), medians over the rounds, read from `/proc/<pid>/stat` of each process. The first column")
        w("is the GraphQL, HTTP and JSON layers; the last two are the database work without them.\n")
        w("| Scenario | Server | Its PostgreSQL | wrk | PostgreSQL under pgbench | pgbench | Server / PostgreSQL under pgbench |")
        w("|---|---:|---:|---:|---:|---:|---:|")
        for s, p in r["pgbench"].items():
            c = p.get("cpu_us")
            if not c:
                continue
            w(f"| ({s}) | {c['server']:.0f} | {c['server_postgres']:.0f} | {c['wrk']:.0f} | {c['pgbench_postgres']:.0f} | "
              f"{c['pgbench']:.0f} | **{c['server'] / c['pgbench_postgres']:.2f}** |")
        w("")
    if r.get("scaling"):
        w("## As the data grows\n")
        w("| Articles | (a) p50 / p99 ms | (b) p50 / p99 ms | (c) p50 / p99 ms | Statements for first: 1 / 20 / 100 (a; b; c) |")
        w("|---:|---|---|---|---|")
        for n, row in r["scaling"].items():
            cells = [f"{ms(row['scenarios'][s]['p50_us'])} / {ms(row['scenarios'][s]['p99_us'])}" for s in "abc"]
            counts = "; ".join(" / ".join(str(c) for c in row["statements_by_page_size"][s]) for s in "abc")
            w(f"| {int(n):,} | {' | '.join(cells)} | {counts} |")
        w("")
        for s in "abc":
            p50s = [row["scenarios"][s]["p50_us"] for row in r["scaling"].values()]
            w(f"- ({s}) largest p50 / smallest p50: **{max(p50s) / min(p50s):.2f}x**")
        largest = list(r["scaling"].values())[-1]
        w("\nScan nodes of every statement's plan on the largest data set (`EXPLAIN`):\n")
        for s in "abc":
            nodes = sorted(set(largest["plans"][s]))
            w(f"- ({s}): " + ", ".join(f"`{n}`" for n in nodes))
        if largest.get("seq_scan_rows"):
            tables = ", ".join(f"`{t}` ({n:,} rows)" for t, n in largest["seq_scan_rows"].items())
            w(f"\nSequential scans only on small tables, which PostgreSQL rightly reads whole: {tables}.")
        w("")
    if r.get("flood"):
        fl = r["flood"]
        w("## Under a login flood\n")
        w(f"(a) at {fl['connections']} connections, alone and while (f) signs in at {st['connections']} connections:\n")
        w("| | (a) requests/s | (a) p50 ms | (a) p99 ms |")
        w("|---|---:|---:|---:|")
        w(f"| alone | {fl['alone']['rps']:,.0f} | {ms(fl['alone']['p50_us'])} | {ms(fl['alone']['p99_us'])} |")
        w(f"| during the flood | {fl['during']['rps']:,.0f} | {ms(fl['during']['p50_us'])} | {ms(fl['during']['p99_us'])} |")
        w(f"\np99 during / alone: **{fl['during']['p99_us'] / fl['alone']['p99_us']:.2f}x**; "
          f"the flood completed {fl['sign_in']['rps']:,.0f} sign-ins/s, and "
          f"{fl['sign_in'].get('errors_timeout', 0):,} of its sign-ins waited past wrk's 10 s timeout "
          "(password hashing runs at a lower priority than reads, by design).\n")
    if r.get("timeouts"):
        names = {
            "pool_acquire": "a request waiting for a saturated pool (`DATABASE_ACQUIRE_TIMEOUT_MS`), `TIMEOUT`",
            "statement_timeout": "a statement past `DATABASE_STATEMENT_TIMEOUT_MS`, `TIMEOUT`",
            "request_timeout": "a request past `REQUEST_TIMEOUT_SECS`, 503 `TIMEOUT`",
            "other_instance": "another instance serving a page changed by a write (its response cache hears it)",
        }
        w("## How soon limits answer\n")
        w("Measured here rather than asserted in the tests, where a loaded machine would fail them:\n")
        w("| | set to ms | p50 ms | max ms | samples |")
        w("|---|---:|---:|---:|---:|")
        for key, f in r["timeouts"].items():
            limit = f"{f['limit_ms']:.0f}" if f["limit_ms"] else "-"
            w(f"| {names[key]} | {limit} | {f['p50_ms']:.0f} | {f['max_ms']:.0f} | {f['samples']} |")
        w("")
    old = path.read_text() if path.exists() else ""
    for key, start, end, section in (
        ("soak", SOAK_START, SOAK_END, soak_section),
        ("subscriptions", SUBS_START, SUBS_END, subscription_section),
        ("background", JOBS_START, JOBS_END, background_section),
    ):
        if r.get(key):
            out.extend(section(r[key]))
        elif start in old and end in old:
            # A run without this part keeps the last one's section, dated.
            out.append(start + old.split(start, 1)[1].split(end, 1)[0] + end + "\n")
    w("## Reproduce\n")
    w("```sh")
    w("scripts/bench.sh                      # everything above; rewrites this file")
    w("scripts/bench.sh --scaling '' --scenarios ab --seconds 10   # a quick look")
    w("scripts/bench.sh --scaling '' --scenarios '' --soak 600     # the soak alone; replaces only its section")
    w("scripts/bench.sh --scaling '' --scenarios '' --subscriptions 30   # the subscription run alone, likewise")
    w("scripts/bench.sh --scaling '' --scenarios '' --webhooks 15 --retention 10000   # background jobs alone, likewise")
    w("```\n")
    w("It needs a PostgreSQL it may create databases in (`BENCH_DATABASE_URL`, default")
    w("`postgres://postgres@127.0.0.1:5432/postgres`); the pgbench comparison reads that server's log, found")
    w("with `pg_lsclusters`. Seeded databases (`conduit_bench_<articles>`) are kept and reused; `--reseed`")
    w("rebuilds them. Raw figures land in `target/bench/results.json`. The statement counts are also")
    w("asserted in CI by `tests/api/query_count.rs`, which runs these same documents, and")
    w("`tests/api/plans.rs` checks that PostgreSQL plans each of their statements once per connection.")
    path.write_text("\n".join(out) + "\n")



# --- background jobs: webhooks and retention ---------------------------------

WEBHOOK_RECEIVER = ROOT / "scripts" / "bench" / "webhooks" / "receiver.mjs"
JOBS_START, JOBS_END = "<!-- background -->", "<!-- /background -->"
CREATE_ENDPOINT = """mutation($url: String!) {
  createWebhookEndpoint(input: { url: $url,
      eventTypes: [COMMENT_CREATED, ARTICLE_FAVORITED, USER_FOLLOWED, ARTICLE_PUBLISHED] }) {
    errors { message }
  }
}"""
# The check constraint wants a reason beside every disabled_at.
WEBHOOKS_OFF = "UPDATE webhook_endpoints SET disabled_at = now(), disabled_reason = 'benchmark: webhooks off'"
WEBHOOKS_ON = "UPDATE webhook_endpoints SET disabled_at = NULL, disabled_reason = NULL"


def create_endpoints(pg: Postgres, database: str, port: int, authors: list[str], url: str) -> None:
    """One endpoint for every event type for each of `authors`, made through
    the API as their owners: the server seals each secret for its own
    endpoint (WEBHOOK_SECRETS_KEY), so a secret written into the table by
    hand would not sign. They are registered on a development server on
    `port` (same database and key, no workers), since production takes
    only https URLs and the receiver is plain http on this machine."""
    ids = ",".join(f"'{a}'" for a in authors)
    emails = pg.sql(f"SELECT email FROM users WHERE id IN ({ids})", database=database).splitlines()
    sign_in = document("sign_in")
    extra = {"APP_ENV": "development", "WEBHOOKS_ALLOW_PRIVATE_ADDRESSES": "true", "JOB_WORKERS": "0"}
    registering = Server(pg.url(database), port, 4, extra)
    try:
        for email in emails:
            token = registering.graphql(sign_in, {"email": email, "password": PASSWORD})["signInUser"]["token"]
            if not token:
                raise RuntimeError(f"{email} could not sign in")
            created = registering.graphql(CREATE_ENDPOINT, {"url": url}, token)["createWebhookEndpoint"]
            if created["errors"]:
                raise RuntimeError(f"{email}: the endpoint was refused: {created['errors']}")
    finally:
        registering.stop()


def global_uuid(global_id: str) -> str:
    raw = base64.urlsafe_b64decode(global_id + "=" * (-len(global_id) % 4)).decode()
    return raw.split(":", 1)[1]


def receiver_stats(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=5) as r:
        return json.loads(r.read())


def receiver_reset(port: int) -> None:
    urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/reset", method="POST"), timeout=5).read()


def wait_for(check, seconds: float, what: str) -> float:
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > seconds:
            raise RuntimeError(f"{what} not done within {seconds} s")
        time.sleep(0.05)
    return time.monotonic() - started


def background_run(pg: Postgres, database: str, args) -> dict:
    """Scenario (e) with webhooks off, then on (every author the writes
    touch has one endpoint for every event type, on a local receiver), in
    alternating rounds; then how fast the queue drains a backlog of
    deliveries; then a purge of soft-deleted articles while the home page
    is under load."""
    out: dict = {}
    receiver_port = args.port + 30
    receiver = subprocess.Popen(["node", str(WEBHOOK_RECEIVER), str(receiver_port)])
    extra = {"WEBHOOKS_ALLOW_PRIVATE_ADDRESSES": "true", "RUST_LOG": "warn,conduit::jobs=info"}
    server = Server(pg.url(database), args.port + 20, args.pool_size, extra)
    connections = args.soak_connections
    try:
        time.sleep(0.5)
        fx = Fixtures(server, readers=64)
        if args.webhooks:
            lines = request_lines("e", fx)
            check_lines(server, lines)
            pg.sql("DELETE FROM webhook_endpoints", database=database)
            authors = [global_uuid(a) for a in fx.author_list]
            url = f"http://127.0.0.1:{receiver_port}/hook"
            # Made once; "off" disables them all, so no event is fanned out.
            create_endpoints(pg, database, args.port + 21, authors, url)
            pg.sql(WEBHOOKS_OFF, database=database)
            rounds = []
            for i in range(2):
                row = {}
                for mode in ("off", "on"):
                    if mode == "on":
                        pg.sql(WEBHOOKS_ON, database=database)
                        receiver_reset(receiver_port)
                    log(f"webhooks round {i + 1}: scenario (e) with webhooks {mode}, {connections} connections, {args.webhooks} s")
                    row[mode] = measure(server, lines, connections, args.webhooks, args.warmup)
                    if mode == "on":
                        drained = wait_for(
                            lambda: int(pg.sql("SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'", database=database)) == 0,
                            120, "the deliveries",
                        )
                        row["receiver"] = receiver_stats(receiver_port)
                        row["deliveries"] = int(pg.sql("SELECT count(*) FROM webhook_deliveries", database=database))
                        row["failed"] = int(pg.sql("SELECT count(*) FROM webhook_deliveries WHERE status <> 'succeeded'", database=database))
                        row["drained_after_s"] = drained
                        pg.sql(WEBHOOKS_OFF, database=database)
                        pg.sql("DELETE FROM webhook_deliveries", database=database)
                    log(f"  {mode}: {row[mode]['rps']:.0f} req/s, p99 {ms(row[mode]['p99_us'])} ms")
                log(f"  {row['deliveries']} deliveries, {row['failed']} not succeeded; write-to-arrival lag "
                    f"p50 {row['receiver']['lag_ms']['p50']} ms, p99 {row['receiver']['lag_ms']['p99']} ms; "
                    f"p99 on/off {row['on']['p99_us'] / row['off']['p99_us']:.2f}x")
                rounds.append(row)
            out["webhooks"] = {"connections": connections, "seconds": args.webhooks, "authors": len(authors), "rounds": rounds}

            # Queue throughput: a backlog of deliveries, drained by the
            # server's own workers.
            n = args.webhook_drain
            endpoint = pg.sql("SELECT id FROM webhook_endpoints ORDER BY id LIMIT 1", database=database)
            pg.sql(f"{WEBHOOKS_ON} WHERE id = '{endpoint}'", database=database)
            receiver_reset(receiver_port)
            pg.sql(
                f"""WITH e AS (SELECT '{endpoint}'::uuid AS id),
                    d AS (INSERT INTO webhook_deliveries (id, endpoint_id, event_id, event_type, payload)
                          SELECT gen_random_uuid(), e.id, -n, 'user.followed', '{{"type": "user.followed", "data": {{}}}}'
                          FROM e, generate_series(1, {n}) n RETURNING id)
                    INSERT INTO jobs (kind, payload) SELECT 'webhooks.deliver', jsonb_build_object('delivery_id', id) FROM d""",
                database=database,
            )
            started = time.monotonic()
            wait_for(lambda: receiver_stats(receiver_port)["unique"] >= n, 600, "the drain")
            seconds = time.monotonic() - started
            pg.sql("DELETE FROM webhook_endpoints", database=database)
            out["drain"] = {"deliveries": n, "seconds": seconds, "per_second": n / seconds}
            log(f"queue drain: {n} deliveries in {seconds:.1f} s, {n / seconds:.0f} jobs/s")

        if args.retention:
            n = args.retention
            home = request_lines("a", fx)
            pg.sql(
                f"""INSERT INTO articles (author_id, slug, title, description, body, deleted_at)
                    SELECT (SELECT id FROM users ORDER BY id LIMIT 1), 'purge-me-' || n, 'Purged', 'd', 'b',
                           now() - interval '40 days'
                    FROM generate_series(1, {n}) n;
                    INSERT INTO comments (article_id, author_id, body)
                    SELECT a.id, a.author_id, 'c' FROM articles a, generate_series(1, 3)
                    WHERE a.slug LIKE 'purge-me-%%';""".replace("%%", "%"),
                database=database,
            )
            log(f"retention: the home page alone, {connections} connections, {args.seconds} s")
            alone = measure(server, home, connections, args.seconds, args.warmup)
            during: dict = {}
            # The purge starts 2 s into the load and should end within it,
            # so the load's p99 is the p99 while it runs.
            load = threading.Thread(target=lambda: during.update(wrk(server, home, connections, args.seconds)))
            load.start()
            time.sleep(2)
            pg.sql("INSERT INTO jobs (kind) VALUES ('retention.soft_deleted')", database=database)
            took = wait_for(
                lambda: int(pg.sql("SELECT count(*) FROM articles WHERE slug LIKE 'purge-me-%'", database=database)) == 0,
                args.seconds * 3, "the purge",
            )
            load.join()
            if took > args.seconds - 2:
                log(f"retention: the purge outlasted the load by {took - args.seconds + 2:.1f} s")
            longest = re.findall(r"longest_batch: ([0-9.]+)(ms|µs|s)", server.log_path.read_text())
            scale = {"ms": 1.0, "µs": 0.001, "s": 1000.0}
            longest_ms = max((float(v) * scale[u] for v, u in longest), default=None)
            out["retention"] = {
                "articles": n, "comments": n * 3, "seconds": took, "connections": connections,
                "alone": alone, "during": during, "longest_batch_ms": longest_ms, "load_seconds": args.seconds,
            }
            log(f"retention: {n} articles and {n * 3} comments purged in {took:.1f} s; longest batch {longest_ms} ms; "
                f"home p99 alone {ms(alone['p99_us'])} ms, during {ms(during['p99_us'])} ms")
    finally:
        server.stop()
        receiver.terminate()
    return out


def background_section(bg: dict) -> list[str]:
    out = [JOBS_START, "## Background jobs\n"]
    out.append(f"Run {bg['date']} at `{bg['commit']}` on the seeded database.\n")
    wh = bg.get("webhooks")
    if wh:
        out.append(
            f"Scenario (e) at {wh['connections']} connections, {wh['seconds']} s per run, with webhooks off and on in "
            f"alternating rounds. On: each of the {wh['authors']} authors the writes touch has one endpoint for every "
            "event type on a local receiver, so every comment of (e), and every favorite and follow that is new, "
            "makes one delivery (unfavorite and unfollow announce nothing). Lag is from the write (the event's "
            "`timestamp`, its transaction's start) to the receiver: commit, fan-out job, delivery job and the "
            "request itself.\n"
        )
        out.append("| round | (e) off: req/s, p99 | (e) on: req/s, p99 | p99 on/off | deliveries | not succeeded | lag p50 | lag p99 |")
        out.append("|---|---|---|---|---|---|---|---|")
        for i, r in enumerate(wh["rounds"], 1):
            lag = r["receiver"]["lag_ms"]
            out.append(
                f"| {i} | {r['off']['rps']:.0f}, {ms(r['off']['p99_us'])} ms | {r['on']['rps']:.0f}, {ms(r['on']['p99_us'])} ms | "
                f"{r['on']['p99_us'] / r['off']['p99_us']:.2f}x | {r['deliveries']} | {r['failed']} | {lag['p50']} ms | {lag['p99']} ms |"
            )
        ratios = [r["on"]["p99_us"] / r["off"]["p99_us"] for r in wh["rounds"]]
        out.append(f"\nMedian p99 ratio on/off: **{statistics.median(ratios):.2f}x** (target 1.2x); "
                   f"enqueue-to-arrival p99 per round: {', '.join(str(r['receiver']['lag_ms']['p99']) + ' ms' for r in wh['rounds'])} (target under 1 s).\n")
    dr = bg.get("drain")
    if dr:
        out.append(f"Queue throughput: a backlog of {dr['deliveries']} deliveries drained by one server's workers "
                   f"(`JOB_WORKERS` at its default) in {dr['seconds']:.1f} s: **{dr['per_second']:.0f} jobs/s**, "
                   "each a claim, a signed HTTP request, and the outcome written.\n")
    rt = bg.get("retention")
    if rt:
        out.append(
            f"Retention: {rt['articles']} articles soft-deleted 40 days ago (with {rt['comments']} comments, removed with them) "
            f"purged in {rt['seconds']:.1f} s, in batches of `RETENTION_BATCH_SIZE`; the longest batch took "
            f"{rt['longest_batch_ms']:.0f} ms. The home page at {rt['connections']} connections: p99 "
            f"{ms(rt['alone']['p99_us'])} ms alone, {ms(rt['during']['p99_us'])} ms over {rt.get('load_seconds', '?')} s of load with the purge in it "
            f"({rt['during']['rps']:.0f} req/s against {rt['alone']['rps']:.0f}).\n"
        )
    out.append(JOBS_END)
    return out


if __name__ == "__main__":
    sys.exit(main())
