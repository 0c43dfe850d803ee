// PostGraphile v5 (amber preset) on the benchmark's database: one
// node:cluster worker per core sharing the port, as PostGraphile is
// deployed on a multi-core machine. Run by scripts/bench/peer.py:
//   node --require ./polyfill.cjs server.mjs   (DATABASE_URL, PORT, WORKERS)
import cluster from "node:cluster";
import { createServer } from "node:http";
import os from "node:os";

const port = Number(process.env.PORT ?? 18500);
const workers = Number(process.env.WORKERS ?? os.availableParallelism());

if (cluster.isPrimary) {
  for (let i = 0; i < workers; i++) cluster.fork();
  cluster.on("exit", (worker, code) => {
    console.error(`worker ${worker.process.pid} exited with ${code}`);
    process.exit(1);
  });
} else {
  const { postgraphile } = await import("postgraphile");
  const { PostGraphileAmberPreset } = await import("postgraphile/presets/amber");
  const { makePgService } = await import("postgraphile/adaptors/pg");
  const { grafserv } = await import("postgraphile/grafserv/node");
  const preset = {
    extends: [PostGraphileAmberPreset],
    pgServices: [
      makePgService({
        connectionString: process.env.DATABASE_URL,
        schemas: ["public"],
        poolConfig: { max: Number(process.env.POOL_SIZE ?? 10) },
      }),
    ],
    grafserv: { port, graphiql: false },
    grafast: { explain: false },
  };
  const pgl = postgraphile(preset);
  const serv = pgl.createServ(grafserv);
  const server = createServer();
  serv.addTo(server).catch((e) => {
    console.error(e);
    process.exit(1);
  });
  server.listen(port, "127.0.0.1");
}
