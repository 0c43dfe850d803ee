// The subscription benchmark's load client: opens many graphql-transport-ws
// sockets spread over several instances, subscribes each to the comments of
// one article, then writes comments at a steady rate through the first
// instance and counts what every subscriber receives.
//
//   node load.mjs '<json settings>'
//
// Settings: { urls: [http base URLs], articles, perArticle, rate (comments/s),
// seconds, writers: [{ email, password }] }. Prints JSON lines on stdout:
// {"phase":"ready", ...} once every subscription is acknowledged (the caller
// reads the servers' memory then), {"phase":"streaming"} when the writes
// start, and {"phase":"done", ...} with the figures.
import WebSocket from 'ws';

const settings = JSON.parse(process.argv[2] ?? '{}');
const { urls, articles: articleCount, perArticle, rate, seconds, writers } = settings;
const say = (line) => process.stdout.write(`${JSON.stringify(line)}\n`);

async function graphql(base, query, variables, token) {
  const response = await fetch(`${base}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify({ query, variables }),
  });
  const body = await response.json();
  if (body.errors) throw new Error(`${response.status} ${JSON.stringify(body.errors)}`);
  return body.data;
}

const COMMENTS = `subscription($a: ID!) { commentEvents(articleId: $a) { cursor change comment { id body createdAt } } }`;

/** One socket, one subscription; counts what arrives. */
function subscriber(base, articleId, stats) {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(`${base.replace(/^http/, 'ws')}/graphql`, 'graphql-transport-ws');
    const seen = new Set();
    const state = { socket, seen, received: 0, duplicates: 0, articleId };
    socket.on('open', () => socket.send(JSON.stringify({ type: 'connection_init', payload: {} })));
    socket.on('message', (data) => {
      const message = JSON.parse(data.toString());
      switch (message.type) {
        case 'connection_ack':
          socket.send(JSON.stringify({ id: '1', type: 'subscribe', payload: { query: COMMENTS, variables: { a: articleId } } }));
          // Acknowledged once the server answers a ping queued behind it.
          socket.send(JSON.stringify({ type: 'ping', payload: { subscribed: true } }));
          break;
        case 'pong':
          if (message.payload?.subscribed) resolve(state);
          break;
        case 'ping':
          socket.send(JSON.stringify({ type: 'pong' }));
          break;
        case 'next': {
          const comment = message.payload?.data?.commentEvents?.comment;
          if (!comment) {
            stats.errors += 1;
            break;
          }
          state.received += 1;
          if (seen.has(comment.id)) state.duplicates += 1;
          seen.add(comment.id);
          stats.lags.push(Date.now() - Date.parse(comment.createdAt));
          break;
        }
        case 'error':
          stats.errors += 1;
          reject(new Error(JSON.stringify(message.payload)));
          break;
        default:
          break;
      }
    });
    socket.on('close', (code, reason) => {
      stats.closed.push(`${code} ${reason}`);
      reject(new Error(`closed ${code} ${reason}`));
    });
    socket.on('error', reject);
  });
}

async function main() {
  const [first] = urls;
  const page = await graphql(first, `query($n: Int!) { articles(first: $n) { edges { node { id } } } }`, { n: articleCount });
  const articleIds = page.articles.edges.map((e) => e.node.id);
  const tokens = [];
  for (const writer of writers) {
    const signedIn = await graphql(first, `mutation($i: SignInUserInput!) { signInUser(input: $i) { token } }`, { i: writer });
    tokens.push(signedIn.signInUser.token);
  }

  const stats = { lags: [], errors: 0, closed: [] };
  const subscribers = [];
  const started = Date.now();
  const wanted = articleIds.length * perArticle;
  const batch = 250;
  for (let i = 0; i < wanted; i += batch) {
    const opening = [];
    for (let j = i; j < Math.min(wanted, i + batch); j += 1) {
      const base = urls[j % urls.length];
      opening.push(subscriber(base, articleIds[j % articleIds.length], stats));
    }
    subscribers.push(...(await Promise.all(opening)));
  }
  say({ phase: 'ready', subscriptions: subscribers.length, open_seconds: (Date.now() - started) / 1000 });

  // Idle first, so the caller can read the servers' memory.
  await new Promise((resolve) => setTimeout(resolve, 5000));
  say({ phase: 'streaming' });
  const written = new Map();
  const interval = 1000 / rate;
  const total = Math.round(rate * seconds);
  const writeStarted = Date.now();
  let failures = 0;
  const inFlight = [];
  for (let n = 0; n < total; n += 1) {
    const due = writeStarted + n * interval;
    const wait = due - Date.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    const articleId = articleIds[n % articleIds.length];
    const token = tokens[n % tokens.length];
    inFlight.push(
      graphql(
        first,
        `mutation($i: AddCommentInput!) { addComment(input: $i) { comment { id } } }`,
        { i: { articleId, body: `bench ${n}` } },
        token,
      )
        .then((data) => written.set(data.addComment.comment.id, articleId))
        .catch(() => {
          failures += 1;
        }),
    );
  }
  await Promise.all(inFlight);
  const writeSeconds = (Date.now() - writeStarted) / 1000;
  // Let the last deliveries arrive.
  await new Promise((resolve) => setTimeout(resolve, 3000));

  let expected = 0;
  let lost = 0;
  let duplicated = 0;
  let received = 0;
  const perArticleWritten = new Map();
  for (const [id, articleId] of written) {
    if (!perArticleWritten.has(articleId)) perArticleWritten.set(articleId, []);
    perArticleWritten.get(articleId).push(id);
  }
  for (const s of subscribers) {
    const mine = perArticleWritten.get(s.articleId) ?? [];
    expected += mine.length;
    for (const id of mine) if (!s.seen.has(id)) lost += 1;
    duplicated += s.duplicates;
    received += s.received;
  }
  const lags = stats.lags.sort((a, b) => a - b);
  const at = (q) => (lags.length ? lags[Math.min(lags.length - 1, Math.floor(q * lags.length))] : null);
  say({
    phase: 'done',
    subscriptions: subscribers.length,
    comments: written.size,
    write_failures: failures,
    write_seconds: writeSeconds,
    expected,
    received,
    lost,
    duplicated,
    errors: stats.errors,
    closed: stats.closed.length,
    lag_ms: { p50: at(0.5), p90: at(0.9), p99: at(0.99), max: lags.at(-1) ?? null },
  });
  for (const s of subscribers) s.socket.terminate();
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
