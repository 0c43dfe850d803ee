#!/usr/bin/env python3
"""Several instances, a replica and a balancer: what scripts/cluster.sh
brings up, measured and broken on purpose.

Phases (--phases, comma-separated; all by default):

  stale  write-then-read sequences through HAProxy, with the replica
         applying WAL 500 ms late: a viewer's read right after their own
         write must see it, whichever instance serves either request.
  share  scenario (e) through HAProxy with three instances: throughput,
         p99, and the share of reads each target served (from /metrics).
  scale  scenario (e) through HAProxy with one instance, then three.
  churn  scenario (e) through HAProxy while one instance is killed
         (SIGKILL) and another stopped (SIGTERM): failed requests by kind,
         and every comment the server acknowledged found afterwards.
  trace  one home-page request through HAProxy with a W3C traceparent:
         the span tree its instance exports, decoded at an OTLP receiver
         (e2e/verify_trace.py).
  pooler scenario (e) with one instance reaching the primary through
         PgBouncer in transaction mode (DATABASE_POOLER=transaction), on a
         cluster of its own: what transaction pooling costs.

Checks fail the run (exit 1): a stale read, a 500, more than 0.1% failed
requests, an acknowledged write missing, a replica share under 70%.
With --report, the figures go into BENCHMARKS.md between the
`<!-- cluster -->` markers.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import http.client
import json
import os
import pathlib
import random
import re
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
import uuid

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import bench  # noqa: E402  (the request sets, wrk and the report helpers)

ROOT = pathlib.Path(__file__).resolve().parents[2]
CLUSTER = ROOT / "scripts" / "cluster.sh"


def log(message: str) -> None:
    print(f"cluster-bench: {message}", file=sys.stderr, flush=True)


def cluster(*args: str, env: dict | None = None) -> str:
    done = subprocess.run(
        [str(CLUSTER), *args], capture_output=True, text=True, stdin=subprocess.DEVNULL,
        env=dict(os.environ, **(env or {})),
    )
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise RuntimeError(f"scripts/cluster.sh {' '.join(args)} failed (exit {done.returncode})")
    return done.stdout


def cluster_env() -> dict[str, str]:
    values = {}
    for line in cluster("env").splitlines():
        match = re.match(r"export (\w+)=(.*)$", line.strip())
        if match:
            values[match.group(1)] = match.group(2).strip("'\"").replace("\\ ", " ")
    return values


class Balancer(bench.Server):
    """bench's Server, pointed at an address something else runs."""

    def __init__(self, base: str):  # noqa: D107  (no process of its own)
        self.base = base


def metric_sum(base: str, pattern: str) -> float:
    try:
        with urllib.request.urlopen(f"{base}/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return 0.0
    return sum(float(v) for v in re.findall(pattern, text, re.M))


def read_targets(instances: list[str]) -> dict[str, float]:
    return {
        target: sum(
            metric_sum(base, rf'^db_read_requests_total\{{target="{target}"\}} (\S+)')
            for base in instances
        )
        for target in ("primary", "replica")
    }


def fallbacks(instances: list[str]) -> dict[str, float]:
    reasons: dict[str, float] = {}
    for base in instances:
        try:
            with urllib.request.urlopen(f"{base}/metrics", timeout=5) as r:
                text = r.read().decode()
        except OSError:
            continue
        for reason, value in re.findall(r'^db_replica_fallbacks_total\{reason="([^"]+)"\} (\S+)', text, re.M):
            reasons[reason] = reasons.get(reason, 0) + float(value)
    return reasons


class Client:
    """One keep-alive HTTP/1.1 connection to the balancer."""

    def __init__(self, base: str):
        host, port = base.removeprefix("http://").split(":")
        self.host, self.port = host, int(port)
        self.conn: http.client.HTTPConnection | None = None

    def send(self, payload: str, token: str | None) -> tuple[int, dict | None]:
        """A query as a GET (idempotent: the balancer may retry it on
        another instance), a mutation as a POST, as browser clients do."""
        request = json.loads(payload)
        if request["query"].lstrip().startswith("mutation"):
            return self.post(payload, token)
        query = urllib.parse.urlencode({"query": request["query"], "variables": json.dumps(request["variables"])})
        return self.post(None, token, path=f"/graphql?{query}")

    def post(self, payload: str | None, token: str | None, path: str = "/graphql") -> tuple[int, dict | None]:
        """(status, body); status 0 for a connection that failed. Without
        a payload, a GET of `path`."""
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
            try:
                self.conn.request("POST" if payload is not None else "GET", path, body=payload, headers={
                    "Content-Type": "application/json",
                    "Accept": "application/graphql-response+json",
                    **({"Authorization": f"Bearer {token}"} if token else {}),
                })
                response = self.conn.getresponse()
                raw = response.read()
                if response.getheader("connection", "").lower() == "close":
                    self.conn.close()
                    self.conn = None
                try:
                    return response.status, json.loads(raw)
                except ValueError:
                    return response.status, None
            except (OSError, http.client.HTTPException):
                # A keep-alive connection the balancer closed between
                # requests is reopened once; that is not a failed request.
                if self.conn is not None:
                    self.conn.close()
                self.conn = None
                if attempt == 1:
                    return 0, None
        return 0, None


# --- phases --------------------------------------------------------------


UPDATE_BIO = "mutation($input: UpdateUserInput!) { updateUser(input: $input) { user { bio } errors { code } } }"
READ_BIO = "{ viewer { user { bio } } }"


def stale_phase(base: str, tokens: list[str], sequences: int, threads: int) -> dict:
    """Each thread has viewers of its own, so no two threads write as one."""
    counts = {"sequences": 0, "stale": 0, "failed": 0}
    lock = threading.Lock()

    def run(index: int) -> None:
        client = Client(base)
        mine = tokens[index::threads]
        stale = failed = 0
        per_thread = sequences // threads + (1 if index < sequences % threads else 0)
        for n in range(per_thread):
            token = mine[n % len(mine)]
            value = uuid.uuid4().hex
            status, body = client.post(bench.body(UPDATE_BIO, {"input": {"bio": value}}), token)
            if status != 200 or not body or body.get("errors") or body["data"]["updateUser"]["errors"]:
                failed += 1
                continue
            status, body = client.post(bench.body(READ_BIO, {}), token)
            if status != 200 or not body or body.get("errors"):
                failed += 1
                continue
            if body["data"]["viewer"]["user"]["bio"] != value:
                stale += 1
        with lock:
            counts["sequences"] += per_thread
            counts["stale"] += stale
            counts["failed"] += failed

    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(run, range(threads)))
    counts["seconds"] = round(time.monotonic() - started, 1)
    return counts


def postmaster(url: str) -> int:
    """The pid of the PostgreSQL server at `url` (its backends' parent),
    from the `postmaster.pid` in its data directory."""
    data = subprocess.run(["psql", url, "-tAc", "SHOW data_directory"], check=True,
                          capture_output=True, text=True).stdout.strip()
    return int((pathlib.Path(data) / "postmaster.pid").read_text().split()[0])


def parent(pid: int) -> int:
    try:
        return int(pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except OSError:
        return 0


def cpu_roles(env: dict) -> dict:
    """Which processes are which part of the cluster, for CPU per request."""
    servers = {"primary": postmaster(env["PRIMARY_URL"]), "replica": postmaster(env["REPLICA_URL"])}

    def of_server(name: str):
        return lambda pid, comm: servers[name] in (pid, parent(pid))

    return {
        "instances": lambda pid, comm: comm == "conduit",
        "primary": of_server("primary"),
        "replica": of_server("replica"),
        "haproxy": lambda pid, comm: comm == "haproxy",
        "redis": lambda pid, comm: comm.startswith("redis-server"),
        "pgbouncer": lambda pid, comm: comm == "pgbouncer",
    }


def wrk_phase(base: str, instances: list[str], lines: list[str], connections: int, seconds: int,
              roles: dict) -> dict:
    before = read_targets(instances)
    before_fallbacks = fallbacks(instances)
    ticks = bench.cpu_ticks()
    figures = bench.wrk(Balancer(base), lines, connections, seconds)
    figures["cpu_us_per_request"] = bench.cpu_per_unit(ticks, bench.cpu_ticks(), figures["requests"], roles)
    after = read_targets(instances)
    after_fallbacks = fallbacks(instances)
    reads = {t: after[t] - before[t] for t in after}
    total = sum(reads.values()) or 1
    figures["reads"] = reads
    figures["replica_share"] = reads["replica"] / total
    figures["fallbacks"] = {k: v - before_fallbacks.get(k, 0) for k, v in after_fallbacks.items()
                            if v - before_fallbacks.get(k, 0)}
    return figures


def wait_balancer(expected_up: int, stats: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{stats};csv", timeout=5) as r:
            rows = r.read().decode().splitlines()
        up = sum(1 for row in rows if row.startswith("conduit,") and ",UP" in row and "BACKEND" not in row)
        if up == expected_up:
            return
        time.sleep(0.2)
    raise RuntimeError(f"HAProxy did not see {expected_up} instances up within {timeout} s")


def churn_phase(base: str, lines: list[str], threads: int, seconds: int, primary_url: str, stats: str) -> dict:
    stop = threading.Event()
    lock = threading.Lock()
    outcomes: dict[str, int] = {}
    acknowledged: list[str] = []

    def record(kind: str) -> None:
        with lock:
            outcomes[kind] = outcomes.get(kind, 0) + 1

    def run(index: int) -> None:
        client = Client(base)
        rng = random.Random(index)
        while not stop.is_set():
            token, payload = rng.choice(lines).split("\t", 1)
            status, body = client.send(payload, None if token == "-" else token)
            if status == 0:
                record("connection failed")
            elif status != 200:
                record(f"HTTP {status}")
            elif body is None:
                record("unreadable body")
            elif body.get("errors"):
                codes = {e.get("extensions", {}).get("code", "?") for e in body["errors"]}
                record("GraphQL " + ",".join(sorted(codes)))
            else:
                record("ok")
                comment = (body.get("data") or {}).get("addComment")
                if comment and comment.get("comment"):
                    with lock:
                        acknowledged.append(comment["comment"]["id"])

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    events = []
    started = time.monotonic()

    def at(fraction: float, what: str, *command: str) -> None:
        time.sleep(max(0.0, started + seconds * fraction - time.monotonic()))
        log(what)
        cluster(*command)
        events.append((round(time.monotonic() - started, 1), what))

    at(0.25, "SIGKILL instance 2", "kill", "2")
    at(0.45, "SIGTERM instance 3", "stop", "3")
    at(0.65, "instance 2 starts again", "start", "2")
    at(0.75, "instance 3 starts again", "start", "3")
    time.sleep(max(0.0, started + seconds - time.monotonic()))
    stop.set()
    for w in workers:
        w.join()
    total = sum(outcomes.values())
    failed = total - outcomes.get("ok", 0)
    # Every comment the server said it created is on the primary.
    ids = [bench.global_uuid(i) for i in acknowledged]
    missing = 0
    for chunk in range(0, len(ids), 1000):
        part = ids[chunk:chunk + 1000]
        found = subprocess.run(
            ["psql", primary_url, "-tA", "-c",
             f"SELECT count(*) FROM comments WHERE id IN ({','.join(repr(i) for i in part)})"],
            check=True, capture_output=True, text=True,
        ).stdout.strip()
        missing += len(part) - int(found)
    wait_balancer(3, stats)
    return {
        "requests": total,
        "failed": failed,
        "failed_share": failed / max(total, 1),
        "outcomes": outcomes,
        "server_errors": sum(v for k, v in outcomes.items() if k.startswith("HTTP 5") and k != "HTTP 503"),
        "http_500": outcomes.get("HTTP 500", 0),
        "acknowledged_comments": len(ids),
        "missing_comments": missing,
        "events": events,
        "seconds": seconds,
    }


# --- report ----------------------------------------------------------------


def report_lines(r: dict) -> list[str]:
    m = r["machine"]
    out = [
        "<!-- cluster -->",
        "## Several instances, a replica and a balancer",
        "",
        f"`python3 scripts/bench/cluster.py --report` ({r['date']}, commit `{r['commit']}`, {m['cpus']} cores, "
        f"release build): `scripts/cluster.sh up` with a PostgreSQL primary and a streaming replica applying WAL "
        f"{r['apply_delay_ms']} ms late (`recovery_min_apply_delay`), Redis, instances behind HAProxy "
        f"(`leastconn`, `/readyz` checks every 500 ms); {r['users']} users, {r['articles']} articles; every "
        "instance and PostgreSQL on this one machine.",
        "",
    ]
    if "stale" in r:
        s = r["stale"]
        out += [
            f"**Read your writes**: {s['sequences']:,} write-then-read sequences (a viewer sets their bio, then "
            f"reads it back; {r['threads']} at once, each request to whichever instance HAProxy picks): "
            f"**{s['stale']} stale reads**, {s['failed']} failed requests, in {s['seconds']} s; "
            f"{int(s['kept_on_primary']):,} of the reads were sent to the primary because the replica had not "
            "yet replayed the reader's write.",
            "",
        ]
    if "scale" in r:
        out += [
            f"Scenario (e) (80% reads, 20% writes, {r['connections']} connections, {r['seconds']} s per run) through HAProxy:",
            "",
            "| instances | requests/s | p50 (ms) | p99 (ms) | reads served by the replica | fallbacks to the primary, by reason |",
            "|---|---|---|---|---|---|",
        ]
        rows = sorted(r["scale"].items()) + ([("1, through PgBouncer", r["pooler"])] if "pooler" in r else [])
        for n, f in rows:
            reasons = ", ".join(f"{k} {int(v):,}" for k, v in sorted(f["fallbacks"].items())) or "none"
            out.append(f"| {n} | {f['rps']:,.0f} | {bench.ms(f['p50_us'])} | {bench.ms(f['p99_us'])} | "
                       f"{f['replica_share']:.0%} | {reasons} |")
        out += [
            "",
            "CPU per request of scenario (e), by part (µs, from `/proc`, over the same runs), and the requests/s "
            "one core of each part carries at that cost:",
            "",
            "| instances | instances' CPU | primary | replica | HAProxy | Redis | PgBouncer |",
            "|---|---|---|---|---|---|---|",
        ]
        for n, f in rows:
            c = {"pgbouncer": 0, **f["cpu_us_per_request"]}
            cells = " | ".join(f"{c[k]:,.0f} ({1e6 / c[k]:,.0f}/s)" if c[k] else "0"
                               for k in ("instances", "primary", "replica", "haproxy", "redis", "pgbouncer"))
            out.append(f"| {n} | {cells} |")
        out.append("")
    if "churn" in r:
        c = r["churn"]
        kinds = ", ".join(f"{k}: {v:,}" for k, v in sorted(c["outcomes"].items()))
        events = "; ".join(f"{t} s {what}" for t, what in c["events"])
        out += [
            f"**Instances coming and going**: scenario (e) from {r['threads']} clients (queries as GET, which "
            "HAProxy may retry on another instance, mutations as POST, which it does not) through HAProxy for "
            f"{c['seconds']} s ({events}): {c['requests']:,} requests, **{c['failed']} failed "
            f"({c['failed_share']:.3%})**, {c['http_500']} of them a 500 ({kinds}). "
            f"{c['acknowledged_comments']:,} comments acknowledged, **{c['missing_comments']} missing** afterwards.",
            "",
        ]
    out += [
        "**Capacity model.** On this machine the instances, HAProxy, both PostgreSQL servers and the load "
        "generator share two cores, so three instances serve no more than one (fewer: three runtimes and "
        "three pools contend for the same two cores, and p99 grows): the CPU is the limit whichever process "
        "holds it. On bigger machines each part has cores of its own; a part saturates when its CPU per "
        "request (the table) times the request rate reaches its cores. For a target rate R of this mix: "
        "instances need R x (instances' µs) / 1e6 cores, the replicas R x (replica µs) / 1e6, the primary "
        "R x (primary µs) / 1e6, HAProxy R x (HAProxy µs) / 1e6. What saturates first, in order:",
        "",
        "1. **Instance CPU**: the largest share per request, and stateless: add instances (or cores).",
        "2. **Replica CPU** for reads: the reads that do not follow the reader's own write within the "
        "replica's delay (the share above). Add replicas (`DATABASE_REPLICA_URLS` takes several).",
        "3. **Primary CPU and WAL** for writes, each request's session check (kept on the primary so a "
        "sign-out takes effect at once) and the reads that fall back. It is the one part that does not "
        "scale out; keep its connections few with PgBouncer in transaction mode (`DATABASE_POOLER`).",
        "",
        "<!-- /cluster -->",
    ]
    return out


def seed_and_sign_in(args, env: dict) -> tuple[list[str], list[str]]:
    """Seeds the cluster's primary; the readers' tokens, and scenario (e)'s
    requests."""
    log(f"seeding {args.users} users and {args.articles} articles on the primary")
    subprocess.run([args.binary, "seed", "--users", str(args.users), "--articles", str(args.articles)],
                   env=dict(os.environ, DATABASE_URL=env["PRIMARY_URL"], RUST_LOG="warn"), check=True,
                   stdout=subprocess.DEVNULL)
    time.sleep(args.apply_delay / 1000 + 1)
    log("signing the readers in")
    fx = bench.Fixtures(Balancer(env["BALANCER_URL"]), args.users)
    return fx.tokens, bench.request_lines("e", fx)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default=str(ROOT / "target" / "release" / "conduit"))
    parser.add_argument("--phases", default="stale,share,scale,churn,trace,pooler")
    parser.add_argument("--sequences", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--churn-seconds", type=int, default=40)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--articles", type=int, default=5000)
    parser.add_argument("--apply-delay", type=int, default=500)
    parser.add_argument("--report", action="store_true", help="write the figures into BENCHMARKS.md")
    args = parser.parse_args()
    phases = set(filter(None, args.phases.split(",")))
    bench.BINARY = pathlib.Path(args.binary)
    bench.WORK.mkdir(parents=True, exist_ok=True)

    instance_env = " ".join([
        "RATE_LIMIT_POINTS=0", "SIGN_IN_LIMIT_PER_ACCOUNT=100000000", "SIGN_IN_LIMIT_PER_ADDRESS=100000000",
        "SIGN_UP_LIMIT_PER_ADDRESS=100000000", "ACCESS_TOKEN_TTL_SECS=86400", "RUST_LOG=warn",
    ])
    failures: list[str] = []
    result: dict = {
        "date": time.strftime("%Y-%m-%d"),
        "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                 text=True).stdout.strip(),
        "machine": {"cpus": os.cpu_count()},
        "apply_delay_ms": args.apply_delay, "users": args.users, "articles": args.articles,
        "threads": args.threads, "connections": args.connections, "seconds": args.seconds,
    }
    receiver = None
    try:
        if "trace" in phases:
            receiver = subprocess.Popen(
                [sys.executable, str(ROOT / "e2e" / "verify_trace.py"), "receive", "--port", "24318"],
                stdout=subprocess.PIPE, text=True,
            )
            if receiver.stdout.readline().strip() != "listening":
                raise RuntimeError("the OTLP receiver did not start (is port 24318 free?)")
            instance_env += " OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:24318"
        cluster("down")
        log("bringing the cluster up")
        cluster("up", "--instances", "3", "--apply-delay", str(args.apply_delay), "--binary", args.binary,
                env={"CLUSTER_INSTANCE_ENV": instance_env})
        env = cluster_env()
        base = env["BALANCER_URL"]
        instances = env["INSTANCE_URLS"].split()
        tokens, lines = seed_and_sign_in(args, env)

        if "trace" in phases:
            log("trace of one home page through HAProxy")
            checked = subprocess.run([sys.executable, str(ROOT / "e2e" / "verify_trace.py"), "check",
                                      "--port", "24318", "--balancer", base], capture_output=True, text=True)
            sys.stderr.write(checked.stdout + checked.stderr)
            if checked.returncode != 0:
                failures.append("the trace through HAProxy")
            result["trace"] = checked.stdout.strip().splitlines()[-1:] if checked.stdout else []
        if "stale" in phases:
            log(f"{args.sequences} write-then-read sequences")
            before = fallbacks(instances)
            result["stale"] = stale = stale_phase(base, tokens, args.sequences, args.threads)
            # The reads that a replica would have answered stale, sent to
            # the primary instead: the mechanism at work, not luck.
            stale["kept_on_primary"] = fallbacks(instances).get("replica_behind_reader", 0) - before.get(
                "replica_behind_reader", 0)
            log(f"stale: {stale}")
            if stale["stale"] or stale["failed"]:
                failures.append(f"{stale['stale']} stale reads, {stale['failed']} failed")
        if "share" in phases or "scale" in phases:
            result["scale"] = {}
            bench.wrk(Balancer(base), lines, args.connections, 3)  # warm-up
            roles = cpu_roles(env)
            three = wrk_phase(base, instances, lines, args.connections, args.seconds, roles)
            log(f"three instances: {three['rps']:.0f} requests/s, p99 {three['p99_us'] / 1000:.1f} ms, "
                f"replica share {three['replica_share']:.0%}")
            if three["replica_share"] < 0.70:
                failures.append(f"replica share {three['replica_share']:.0%} < 70%")
            if "scale" in phases:
                cluster("stop", "2")
                cluster("stop", "3")
                wait_balancer(1, env["CLUSTER_STATS_URL"])
                bench.wrk(Balancer(base), lines, args.connections, 3)
                one = wrk_phase(base, instances[:1], lines, args.connections, args.seconds, roles)
                log(f"one instance: {one['rps']:.0f} requests/s, p99 {one['p99_us'] / 1000:.1f} ms")
                cluster("start", "2")
                cluster("start", "3")
                wait_balancer(3, env["CLUSTER_STATS_URL"])
                result["scale"]["1"] = one
            result["scale"]["3"] = three
        if "churn" in phases:
            log(f"churn: {args.churn_seconds} s of scenario (e), killing and stopping instances")
            result["churn"] = churn = churn_phase(base, lines, args.threads, args.churn_seconds,
                                                  env["PRIMARY_URL"], env["CLUSTER_STATS_URL"])
            log(f"churn: {json.dumps(churn)}")
            if churn["failed_share"] >= 0.001:
                failures.append(f"{churn['failed_share']:.3%} failed requests")
            if churn["http_500"]:
                failures.append(f"{churn['http_500']} answers were 500")
            if churn["missing_comments"]:
                failures.append(f"{churn['missing_comments']} acknowledged comments missing")
        if "pooler" in phases:
            log("one instance through PgBouncer in transaction mode")
            cluster("down")
            cluster("up", "--instances", "1", "--pooler", "--apply-delay", str(args.apply_delay),
                    "--binary", args.binary, env={"CLUSTER_INSTANCE_ENV": instance_env})
            env = cluster_env()
            _, pooled_lines = seed_and_sign_in(args, env)
            bench.wrk(Balancer(env["BALANCER_URL"]), pooled_lines, args.connections, 3)
            result["pooler"] = pooled = wrk_phase(env["BALANCER_URL"], env["INSTANCE_URLS"].split(), pooled_lines,
                                                  args.connections, args.seconds, cpu_roles(env))
            log(f"through PgBouncer: {pooled['rps']:.0f} requests/s, p99 {pooled['p99_us'] / 1000:.1f} ms")
    finally:
        if failures:
            status = subprocess.run([str(CLUSTER), "status"], capture_output=True, text=True,
                                    stdin=subprocess.DEVNULL)
            sys.stderr.write(status.stdout)
        cluster("down")
        if receiver:
            receiver.terminate()
    saved = bench.WORK / "cluster.json"
    if saved.exists():
        # A run of some phases keeps the others' last figures in the report.
        previous = json.loads(saved.read_text())
        for phase in ("stale", "scale", "churn", "trace", "pooler"):
            if phase not in result and phase in previous:
                result[phase] = previous[phase]
    (bench.WORK / "cluster.json").write_text(json.dumps(result, indent=2))
    if args.report:
        bench.replace_section(ROOT / "BENCHMARKS.md", "<!-- cluster -->", "<!-- /cluster -->", report_lines(result))
    if failures:
        log("FAILED: " + "; ".join(failures))
        return 1
    log("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
