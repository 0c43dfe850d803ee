// A body over MAX_BODY_BYTES, sent with Node's fetch on a kept-alive
// connection between ordinary requests, reads its 413 every time: the
// server takes the rest of the body before it answers, so the client never
// writes into a closed socket (EPIPE, "other side closed").
//
//   node e2e/oversized.mjs http://127.0.0.1:8080/graphql
const url = process.argv[2];
if (!url) {
  console.error('usage: node e2e/oversized.mjs <graphql url>');
  process.exit(2);
}
const rounds = 20;
const big = JSON.stringify({ query: '{ tags }', variables: { padding: 'a'.repeat(10 * 1024 * 1024) } });
// Each request, body included, fails its round after this long.
const REQUEST_TIMEOUT_MS = 30_000;
const post = (body) =>
  fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body,
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  });

const failures = [];
for (let round = 0; round < rounds; round++) {
  try {
    const small = await post(JSON.stringify({ query: '{ tags }' }));
    if (small.status !== 200) failures.push(`round ${round}: a small request got ${small.status}`);
    await small.arrayBuffer();
  } catch (error) {
    failures.push(`round ${round}: a small request: ${error.name === 'TimeoutError' ? `no answer within ${REQUEST_TIMEOUT_MS} ms` : error.message}`);
    continue;
  }
  try {
    const response = await post(big);
    const body = await response.json();
    const code = body.errors?.[0]?.extensions?.code;
    if (response.status !== 413 || code !== 'BAD_USER_INPUT') {
      failures.push(`round ${round}: got ${response.status} ${code}`);
    }
  } catch (error) {
    const what = error.name === 'TimeoutError' ? `no answer within ${REQUEST_TIMEOUT_MS} ms` : error.message;
    failures.push(`round ${round}: ${error.cause?.code ?? ''} ${what}`);
  }
}
if (failures.length > 0) {
  console.error(failures.join('\n'));
  console.error(`${failures.length} of ${rounds} rounds failed`);
  process.exit(1);
}
console.log(`${rounds} rounds: every 10 MB body read its 413, every small request its 200`);
