// Serves assets/graphiql/ the way the Conduit server does, to try the page
// without rebuilding the server: every response carries the server's
// Content-Security-Policy, GET /graphql for browsers (Accept: text/html)
// returns index.html, GET /graphiql/<file> returns the other files, and every
// other /graphql request is passed on to a running server.
//   node e2e/serve-graphiql.mjs [PORT] [UPSTREAM]
//   node e2e/serve-graphiql.mjs 18182 http://127.0.0.1:18181
import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; " +
  "img-src 'self' data:; font-src 'self' data:; base-uri 'none'; form-action 'none'; " +
  "frame-ancestors 'none'";

const port = Number(process.argv[2] ?? 18182);
const upstream = new URL(process.argv[3] ?? 'http://127.0.0.1:18181');
const assets = join(dirname(fileURLToPath(import.meta.url)), '..', 'assets', 'graphiql');

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.md': 'text/markdown; charset=utf-8',
  '': 'text/plain; charset=utf-8',
};

function send(res, status, type, body) {
  res.writeHead(status, {
    'content-type': type,
    'content-security-policy': CSP,
    'x-content-type-options': 'nosniff',
    'cache-control': 'no-cache',
  });
  res.end(body);
}

async function sendFile(res, name) {
  try {
    const body = await readFile(join(assets, name));
    send(res, 200, TYPES[extname(name)] ?? 'application/octet-stream', body);
  } catch {
    send(res, 404, TYPES[''], 'not found');
  }
}

async function proxy(req, res) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  const headers = { ...req.headers };
  delete headers.host;
  delete headers.connection;
  delete headers['content-length'];
  const target = new URL(req.url, upstream);
  try {
    const answer = await fetch(target, {
      method: req.method,
      headers,
      body: ['GET', 'HEAD'].includes(req.method) ? undefined : Buffer.concat(chunks),
    });
    const body = Buffer.from(await answer.arrayBuffer());
    send(res, answer.status, answer.headers.get('content-type') ?? TYPES[''], body);
  } catch (error) {
    send(res, 502, TYPES[''], `upstream ${upstream.origin} failed: ${error.message}`);
  }
}

const server = createServer((req, res) => {
  const { pathname } = new URL(req.url, 'http://localhost');
  const wantsHtml = (req.headers.accept ?? '').includes('text/html');
  if (pathname === '/graphql' && req.method === 'GET' && wantsHtml) {
    return void sendFile(res, 'index.html');
  }
  const file = /^\/graphiql\/([A-Za-z0-9][A-Za-z0-9._-]*)$/.exec(pathname);
  if (file && req.method === 'GET' && file[1] !== 'index.html') {
    return void sendFile(res, file[1]);
  }
  if (pathname === '/graphql' || pathname === '/readyz' || pathname === '/healthz') {
    return void proxy(req, res);
  }
  send(res, 404, TYPES[''], 'not found');
});

server.listen(port, '127.0.0.1', () => {
  console.log(`GraphiQL assets on http://127.0.0.1:${port}/graphql, API from ${upstream.origin}`);
});
