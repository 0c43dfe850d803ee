// The benchmark's webhook receiver: answers every POST with 204 and keeps,
// per message, the lag from the event's timestamp (its write) to arrival.
// GET /stats returns the figures so far; POST /reset clears them.
//
//   node receiver.mjs <port>
import http from 'node:http';

const port = Number(process.argv[2]);
let lags = [];
let ids = new Set();
let requests = 0;
let first = 0;
let last = 0;

const quantile = (sorted, q) =>
  sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] : null;

http
  .createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/stats') {
      const sorted = [...lags].sort((a, b) => a - b);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({
        requests, unique: ids.size, first, last,
        lag_ms: { p50: quantile(sorted, 0.5), p99: quantile(sorted, 0.99), max: sorted.at(-1) ?? null },
      }));
      return;
    }
    if (req.method === 'POST' && req.url === '/reset') {
      lags = []; ids = new Set(); requests = 0; first = 0; last = 0;
      res.writeHead(204).end();
      return;
    }
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const now = Date.now();
      requests += 1;
      if (!first) first = now;
      last = now;
      const id = req.headers['webhook-id'];
      if (!ids.has(id)) {
        ids.add(id);
        try {
          const stamp = Date.parse(JSON.parse(Buffer.concat(chunks)).timestamp);
          if (!Number.isNaN(stamp)) lags.push(now - stamp);
        } catch { /* a body without a timestamp has no lag */ }
      }
      res.writeHead(204).end();
    });
  })
  .listen(port, '127.0.0.1');
