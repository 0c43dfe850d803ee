"""The anonymous home page against PostGraphile v5, and what the response
cache buys, measured in one run on one seeded database.

Four targets take turns in every round (--rounds, --seconds each, the same
--connections):

  uncached  scenario (a) on the server with RESPONSE_CACHE=off
  peer      the same page from PostGraphile v5 (amber preset), one
            node:cluster worker per core (scripts/bench/peer/server.mjs)
  cached    scenario (a) on the server with the response cache on
  floor     GET /healthz on that server: its HTTP floor, a route that does
            no GraphQL and no database work

then scenario (e) (20% writes) takes turns with the cache on and off.
Reported per round and as medians: uncached/peer (target 4x),
cached/floor (target 0.5), cached/peer (target 20x), and (e)'s p99 with
the cache on over off (target at most 1.1). With --report the figures go
into BENCHMARKS.md between the `<!-- peer -->` markers.

Needs Node 20+ and npm (PostGraphile is installed under target/bench/peer
on first use) and a release build: scripts/bench.sh runs it after bench.py.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import bench  # noqa: E402  (seeding, the server, wrk and the report helpers)

ROOT = bench.ROOT
PEER_SOURCE = ROOT / "scripts" / "bench" / "peer"
PEER_DIR = bench.WORK / "peer"
START, END = "<!-- peer -->", "<!-- /peer -->"

# The home page as PostGraphile's schema spells it: articles newest first,
# each with its tags and author, as scenario (a) asks. PostGraphile filters
# only on indexed columns, and `deleted_at` has none: the seeded articles
# are all live, so the page is the same.
PEER_HOME = """query HomeAnonymous($first: Int = 20) {
  allArticles(first: $first, orderBy: CREATED_AT_DESC) {
    edges { node {
      id slug title description createdAt favoritesCount
      articleTagsByArticleId { nodes { tagByTagId { name } } }
      userByAuthorId { username image }
    } }
    pageInfo { hasNextPage endCursor }
  }
}"""


class Endpoint:
    """Something wrk can load: a base URL."""

    def __init__(self, base: str):
        self.base = base


class Peer:
    def __init__(self, database_url: str, port: int, workers: int, pool_size: int):
        PEER_DIR.mkdir(parents=True, exist_ok=True)
        for name in ("package.json", "server.mjs", "polyfill.cjs"):
            shutil.copy(PEER_SOURCE / name, PEER_DIR / name)
        if not (PEER_DIR / "node_modules" / "postgraphile").exists():
            bench.log("installing PostGraphile v5 (npm) under target/bench/peer")
            subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"], cwd=PEER_DIR, check=True)
        self.base = f"http://127.0.0.1:{port}"
        env = dict(os.environ, DATABASE_URL=database_url, PORT=str(port), WORKERS=str(workers),
                   POOL_SIZE=str(pool_size), NODE_ENV="production")
        self.log_path = bench.WORK / "peer.log"
        self.process = subprocess.Popen(
            ["node", "--require", "./polyfill.cjs", "server.mjs"], cwd=PEER_DIR, env=env,
            stdout=open(self.log_path, "w"), stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 120
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"PostGraphile exited; see {self.log_path}")
            try:
                data = self.graphql(PEER_HOME, {"first": 20})
                if len(data["allArticles"]["edges"]) == 20:
                    return
            except Exception:  # noqa: BLE001 (starting: not listening, schema not built)
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.5)

    def graphql(self, query: str, variables: dict) -> dict:
        request = urllib.request.Request(
            f"{self.base}/graphql", data=json.dumps({"query": query, "variables": variables}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as r:
            response = json.loads(r.read())
        if response.get("errors"):
            raise RuntimeError(f"PostGraphile errors: {response['errors']}")
        return response["data"]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def run(args) -> dict:
    pg = bench.Postgres(args.database_url)
    database, seeded = bench.seed_dataset(pg, args.articles, args.users, args.reseed)
    # PostGraphile orders only by indexed columns, and ours is partial.
    pg.sql("CREATE INDEX IF NOT EXISTS articles_created_at_plain_idx ON articles (created_at)", database=database)
    url = pg.url(database)
    workers = os.cpu_count() or 1
    uncached = bench.Server(url, args.port, args.pool_size, {"RESPONSE_CACHE": "off"})
    cached = bench.Server(url, args.port + 1, args.pool_size)
    peer = Peer(url, args.port + 2, workers, args.pool_size)
    try:
        fx = bench.Fixtures(cached, 64)
        home = bench.request_lines("a", fx)
        mix = bench.request_lines("e", fx)
        peer_home = [f"-\t{bench.body(PEER_HOME, {'first': 20})}"]
        floor = ["GET\t/healthz"]
        # The cached page is the uncached one, and PostGraphile's has as many articles.
        page = json.loads(home[0].split("\t", 1)[1])
        answers = [server.graphql(page["query"], page["variables"]) for server in (uncached, cached, cached)]
        if not answers[0] == answers[1] == answers[2]:
            raise RuntimeError("the cached home page differs from the uncached one")
        if len(peer.graphql(PEER_HOME, {"first": 20})["allArticles"]["edges"]) != len(answers[0]["articles"]["edges"]):
            raise RuntimeError("PostGraphile's home page has another number of articles")
        targets = [
            ("uncached", uncached, home),
            ("peer", Endpoint(peer.base), peer_home),
            ("cached", cached, home),
            ("floor", cached, floor),
        ]
        for _, endpoint, lines in targets:
            bench.wrk(endpoint, lines, args.connections, 2)
        rounds = []
        for n in range(args.rounds):
            row = {}
            for name, endpoint, lines in targets:
                row[name] = bench.wrk(endpoint, lines, args.connections, args.seconds)
            bench.log("round %d: " % (n + 1) + ", ".join(f"{k} {v['rps']:,.0f} rps" for k, v in row.items()))
            rounds.append(row)
        mixes = []
        for n in range(args.mix_rounds):
            row = {}
            for name, server in (("off", uncached), ("on", cached)):
                row[name] = bench.wrk(server, mix, args.connections, args.seconds)
            bench.log(f"(e) round {n + 1}: " + ", ".join(
                f"cache {k} {v['rps']:,.0f} rps p99 {v['p99_us'] / 1000:.1f} ms" for k, v in row.items()))
            mixes.append(row)
    finally:
        peer.stop()
        cached.stop()
        uncached.stop()
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": bench.machine(),
        "node": subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip(),
        "postgraphile": json.loads((PEER_DIR / "node_modules" / "postgraphile" / "package.json").read_text())["version"],
        "seeded": seeded, "workers": workers, "args": vars(args), "rounds": rounds, "mixes": mixes,
    }


def ratios(r: dict) -> dict:
    per = lambda a, b: [row[a]["rps"] / row[b]["rps"] for row in r["rounds"]]
    return {
        "uncached/peer": per("uncached", "peer"),
        "cached/floor": per("cached", "floor"),
        "cached/peer": per("cached", "peer"),
        "e p99 on/off": [row["on"]["p99_us"] / row["off"]["p99_us"] for row in r["mixes"]],
    }


TARGETS = {"uncached/peer": (">=", 4.0), "cached/floor": (">=", 0.5), "cached/peer": (">=", 20.0), "e p99 on/off": ("<=", 1.1)}


def report_lines(r: dict) -> list[str]:
    a, m = r["args"], r["machine"]
    rs = ratios(r)
    ms = lambda us: f"{us / 1000:.1f}"
    lines = [
        START,
        "## Against PostGraphile, and the response cache",
        "",
        f"`python3 scripts/bench/peer.py --report` ({r['date']}, commit `{m['commit']}`, {m['cpu']}): "
        f"PostGraphile {r['postgraphile']} (amber preset) on Node {r['node']}, {r['workers']} `node:cluster` workers, "
        f"pool of {a['pool_size']} each; our server's pool {a['pool_size']}; {a['articles']:,} articles and "
        f"{a['users']:,} users; {a['connections']} connections, {a['seconds']} s per turn, targets in turn each round. "
        "The load generator, PostgreSQL and the servers share the machine.",
        "",
        "| Round | uncached (a) rps / p99 ms | PostGraphile rps / p99 ms | cached (a) rps / p99 ms | floor `/healthz` rps | uncached / PostGraphile | cached / floor | cached / PostGraphile |",
        "|---:|---|---|---|---:|---:|---:|---:|",
    ]
    for i, row in enumerate(r["rounds"]):
        lines.append(
            f"| {i + 1} | {row['uncached']['rps']:,.0f} / {ms(row['uncached']['p99_us'])} | "
            f"{row['peer']['rps']:,.0f} / {ms(row['peer']['p99_us'])} | {row['cached']['rps']:,.0f} / {ms(row['cached']['p99_us'])} | "
            f"{row['floor']['rps']:,.0f} | {rs['uncached/peer'][i]:.2f} | {rs['cached/floor'][i]:.2f} | {rs['cached/peer'][i]:.1f} |"
        )
    med = {k: statistics.median(v) for k, v in rs.items()}
    lines.append(
        f"| **median** | | | | | **{med['uncached/peer']:.2f}** | **{med['cached/floor']:.2f}** | **{med['cached/peer']:.1f}** |"
    )
    lines += ["", "Scenario (e), 20% writes, the cache off and on in turn:", "",
              "| Round | off: rps / p50 / p99 ms | on: rps / p50 / p99 ms | p99 on / off |", "|---:|---|---|---:|"]
    for i, row in enumerate(r["mixes"]):
        off, on = row["off"], row["on"]
        lines.append(
            f"| {i + 1} | {off['rps']:,.0f} / {ms(off['p50_us'])} / {ms(off['p99_us'])} | "
            f"{on['rps']:,.0f} / {ms(on['p50_us'])} / {ms(on['p99_us'])} | {rs['e p99 on/off'][i]:.2f} |"
        )
    lines.append(f"| **median** | | | **{med['e p99 on/off']:.2f}** |")
    lines += ["", "Targets: " + "; ".join(
        f"{k} {op} {v} ({'met' if (med[k] >= v if op == '>=' else med[k] <= v) else 'missed'}: {med[k]:.2f})"
        for k, (op, v) in TARGETS.items()) + ".", END]
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--articles", type=int, default=100_000)
    parser.add_argument("--reseed", action="store_true")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--mix-rounds", type=int, default=3)
    parser.add_argument("--pool-size", type=int, default=10)
    parser.add_argument("--port", type=int, default=18410)
    parser.add_argument("--report", action="store_true", help="write the figures into BENCHMARKS.md")
    args = parser.parse_args()
    result = run(args)
    (bench.WORK / "peer.json").write_text(json.dumps(result, indent=2))
    lines = report_lines(result)
    print("\n".join(lines))
    if args.report:
        bench.replace_section(ROOT / "BENCHMARKS.md", START, END, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
