// Webhook deliveries checked the way a receiver checks them: with the
// official Standard Webhooks libraries, here the npm package and, through
// e2e/verify_webhooks.py, the PyPI package.
//
// Starts a receiver on 127.0.0.1, signs up two fresh users A and B; A writes
// an article and subscribes an endpoint at the receiver to USER_FOLLOWED and
// COMMENT_CREATED (every instance whose workers take jobs from the server's
// database must run with WEBHOOKS_ALLOW_PRIVATE_ADDRESSES=true to deliver
// there). B follows A: the
// user.followed delivery must verify with the secret from
// createWebhookEndpoint. A rotates the secret, B comments on A's article: the
// comment.created delivery must verify with the new secret and with the old
// one (during a rotation both signatures are sent). A tampered body and an
// unrelated secret must fail to verify, so the check can fail. Finally A's
// endpoint must list both deliveries as SUCCEEDED.
//
//   node e2e/webhooks.mjs http://127.0.0.1:8080/graphql [RECORD_PATH]
//
// The received requests (raw body, webhook-* headers, the secrets that must
// and must not verify them) are saved to RECORD_PATH (or WEBHOOKS_RECORD;
// default e2e/artifacts/webhook-requests.json) and handed to
// e2e/verify_webhooks.py, run with WEBHOOKS_PYTHON (default
// e2e/.venv/bin/python, made by e2e/run.sh). Exits non-zero on any failure.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Webhook, WebhookVerificationError } from 'standardwebhooks';

const endpoint = process.argv[2];
if (!endpoint || !/^https?:\/\//.test(endpoint)) {
  console.error('usage: node e2e/webhooks.mjs <graphql url> [record path]');
  process.exit(2);
}
const here = dirname(fileURLToPath(import.meta.url));
const recordPath = process.argv[3] ?? process.env.WEBHOOKS_RECORD ?? join(here, 'artifacts', 'webhook-requests.json');
const venvPython = join(here, '.venv', 'bin', 'python');
const python = process.env.WEBHOOKS_PYTHON ?? (existsSync(venvPython) ? venvPython : 'python3');
// How long a delivery, or its SUCCEEDED status, may take to show up.
const WAIT_MS = 15_000;
const SIGNATURE_HEADERS = ['webhook-id', 'webhook-timestamp', 'webhook-signature'];

const run = randomBytes(4).toString('hex');
const failures = [];
const fail = (message) => {
  throw new Error(message);
};
const ok = (message) => console.log(`ok   ${message}`);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------------------
// The receiver: records every request and answers 200.
const received = [];
const receiver = createServer((request, response) => {
  const chunks = [];
  request.on('data', (chunk) => chunks.push(chunk));
  request.on('end', () => {
    received.push({ method: request.method, url: request.url, headers: request.headers, raw: Buffer.concat(chunks) });
    response.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
  });
});
await new Promise((resolve) => receiver.listen(0, '127.0.0.1', resolve));
const hookPath = `/hooks/${run}`;
const hookUrl = `http://127.0.0.1:${receiver.address().port}${hookPath}`;

// The first request whose body has this event type, within WAIT_MS.
async function delivery(type) {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const found = received.find((request) => typeOf(request) === type);
    if (found) return found;
    if (Date.now() > deadline) {
      fail(`no ${type} delivery reached ${hookUrl} within ${WAIT_MS / 1000} s (received: ${received.map(typeOf).join(', ') || 'nothing'})`);
    }
    await sleep(100);
  }
}

function typeOf(request) {
  try {
    return JSON.parse(request.raw.toString('utf8')).type ?? '(no type)';
  } catch {
    return '(not JSON)';
  }
}

// ---------------------------------------------------------------------------
// GraphQL.
async function graphql(query, variables = {}, token) {
  const headers = { 'content-type': 'application/json', accept: 'application/json' };
  if (token) headers.authorization = `Token ${token}`;
  let response;
  try {
    response = await fetch(endpoint, {
      method: 'POST',
      headers,
      body: JSON.stringify({ query, variables }),
      signal: AbortSignal.timeout(WAIT_MS),
    });
  } catch (error) {
    if (error.name === 'TimeoutError') fail(`no answer from ${endpoint} within ${WAIT_MS / 1000} s`);
    throw error;
  }
  const text = await response.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    fail(`HTTP ${response.status}, not JSON: ${text.slice(0, 500)}`);
  }
  if (body.errors?.length || !body.data) {
    fail(`HTTP ${response.status}: ${JSON.stringify(body.errors ?? body).slice(0, 1000)}`);
  }
  return body.data;
}

function noUserErrors(payload, what) {
  if (!payload) fail(`${what}: null payload`);
  if (payload.errors?.length) fail(`${what}: ${JSON.stringify(payload.errors)}`);
  return payload;
}

async function signUpAndIn(name) {
  const username = `wh_${name}_${run}`;
  const email = `${username}@example.com`;
  const password = `secret-${randomBytes(8).toString('hex')}`;
  const created = await graphql(
    `mutation SignUp($input: CreateUserInput!) { createUser(input: $input) { user { id } errors { message path code } } }`,
    { input: { username, email, password } },
  );
  noUserErrors(created.createUser, `createUser ${username}`);
  const session = await graphql(
    `mutation SignIn($input: SignInUserInput!) { signInUser(input: $input) { token viewer { user { id username } } errors { message path code } } }`,
    { input: { email, password } },
  );
  const signedIn = noUserErrors(session.signInUser, `signInUser ${username}`);
  if (!signedIn.token || !signedIn.viewer?.user?.id) fail(`signInUser ${username}: no token or viewer`);
  return { username, id: signedIn.viewer.user.id, token: signedIn.token };
}

// ---------------------------------------------------------------------------
// Verification with the npm package: `new Webhook(secret).verify(payload,
// headers)` returns the parsed payload or throws WebhookVerificationError.
function verifies(secret, raw, headers) {
  try {
    new Webhook(secret).verify(raw, headers);
    return { ok: true };
  } catch (error) {
    if (error instanceof WebhookVerificationError) return { ok: false, reason: error.message };
    throw error;
  }
}

// A body with another event type: what a forger would send with a captured
// signature.
function tamperedBody(raw) {
  const parsed = JSON.parse(raw.toString('utf8'));
  const forged = JSON.stringify({ ...parsed, type: parsed.type === 'article.favorited' ? 'user.followed' : 'article.favorited' });
  return Buffer.from(forged, 'utf8');
}

// Checks one received request with the npm library; the outcome of each
// secret is recorded (a wrong outcome is a failure, the run goes on).
function checkRequest(name, request, valid, invalid) {
  const headers = Object.fromEntries(SIGNATURE_HEADERS.map((header) => [header, request.headers[header]]));
  const missing = SIGNATURE_HEADERS.filter((header) => !headers[header]);
  if (missing.length) fail(`${name}: missing header(s) ${missing.join(', ')}`);
  if (request.method !== 'POST') failures.push(`${name}: method ${request.method}, expected POST`);
  if (request.url !== hookPath) failures.push(`${name}: path ${request.url}, expected ${hookPath}`);
  if (!/^application\/json\b/i.test(request.headers['content-type'] ?? '')) {
    failures.push(`${name}: content-type ${request.headers['content-type']}, expected application/json`);
  }
  const signatures = headers['webhook-signature'].split(' ').filter((entry) => entry.startsWith('v1,'));
  console.log(`     ${name}: webhook-id ${headers['webhook-id']}, timestamp ${headers['webhook-timestamp']}, ${signatures.length} v1 signature(s)`);

  const expectOutcome = (what, secret, body, shouldPass) => {
    const outcome = verifies(secret, body, headers);
    if (outcome.ok === shouldPass) {
      ok(`npm standardwebhooks: ${name} ${shouldPass ? 'verifies' : 'is refused'} with ${what}${outcome.reason ? ` (${outcome.reason})` : ''}`);
    } else {
      failures.push(`npm standardwebhooks: ${name} ${shouldPass ? `does not verify with ${what}: ${outcome.reason}` : `verifies with ${what}, expected a refusal`}`);
      console.log(`FAIL ${failures.at(-1)}`);
    }
  };
  for (const { label, secret } of valid) {
    expectOutcome(label, secret, request.raw, true);
    expectOutcome(`${label} but a tampered body`, secret, tamperedBody(request.raw), false);
  }
  for (const { label, secret } of invalid) expectOutcome(label, secret, request.raw, false);

  return { name, body: request.raw.toString('utf8'), bodyBase64: request.raw.toString('base64'), headers, valid, invalid };
}

// ---------------------------------------------------------------------------
const ENDPOINT_FIELDS = 'id url eventTypes enabled disabledReason';

async function main() {
  console.log(`webhooks against ${endpoint}, receiver at ${hookUrl}`);
  const a = await signUpAndIn('a');
  const b = await signUpAndIn('b');
  ok(`signed up ${a.username} and ${b.username}`);

  const article = noUserErrors(
    (
      await graphql(
        `mutation CreateArticle($input: CreateArticleInput!) { createArticle(input: $input) { article { id slug } errors { message path code } } }`,
        { input: { title: `Webhooks ${run}`, description: 'Webhook deliveries', body: 'Signed with Standard Webhooks.', tagList: [] } },
        a.token,
      )
    ).createArticle,
    'createArticle',
  ).article;
  if (!article?.id) fail('createArticle: no article');
  ok(`${a.username} wrote ${article.slug}`);

  const subscribed = ['USER_FOLLOWED', 'COMMENT_CREATED'];
  const created = noUserErrors(
    (
      await graphql(
        `mutation CreateWebhookEndpoint($input: CreateWebhookEndpointInput!) {
          createWebhookEndpoint(input: $input) { endpoint { ${ENDPOINT_FIELDS} } secret errors { message path code } }
        }`,
        { input: { url: hookUrl, eventTypes: subscribed } },
        a.token,
      )
    ).createWebhookEndpoint,
    'createWebhookEndpoint',
  );
  const hook = created.endpoint;
  const secret1 = created.secret;
  if (!hook?.id) fail('createWebhookEndpoint: no endpoint');
  if (typeof secret1 !== 'string' || !secret1.startsWith('whsec_')) fail(`createWebhookEndpoint: secret ${JSON.stringify(secret1)}, expected whsec_…`);
  if (hook.url !== hookUrl) fail(`createWebhookEndpoint: url ${hook.url}, expected ${hookUrl}`);
  if (!hook.enabled) fail(`createWebhookEndpoint: endpoint not enabled (${hook.disabledReason})`);
  if ([...hook.eventTypes].sort().join() !== [...subscribed].sort().join()) {
    fail(`createWebhookEndpoint: eventTypes ${hook.eventTypes}, expected ${subscribed}`);
  }
  ok(`${a.username} subscribed ${hookUrl} to ${subscribed.join(' and ')}`);

  // A secret the server never issued: must verify nothing.
  const stranger = `whsec_${randomBytes(32).toString('base64')}`;

  noUserErrors(
    (
      await graphql(
        `mutation FollowUser($id: ID!) { followUser(input: { id: $id }) { user { id } errors { message path code } } }`,
        { id: a.id },
        b.token,
      )
    ).followUser,
    'followUser',
  );
  ok(`${b.username} followed ${a.username}`);
  const followed = await delivery('user.followed');
  ok('user.followed delivered');

  const rotated = (
    await graphql(
      `mutation RotateWebhookEndpointSecret($input: RotateWebhookEndpointSecretInput!) {
        rotateWebhookEndpointSecret(input: $input) { endpoint { ${ENDPOINT_FIELDS} } secret }
      }`,
      { input: { id: hook.id } },
      a.token,
    )
  ).rotateWebhookEndpointSecret;
  const secret2 = rotated?.secret;
  if (typeof secret2 !== 'string' || !secret2.startsWith('whsec_')) fail(`rotateWebhookEndpointSecret: secret ${JSON.stringify(secret2)}, expected whsec_…`);
  if (secret2 === secret1) fail('rotateWebhookEndpointSecret: the new secret is the old one');
  ok(`${a.username} rotated the endpoint's secret`);

  const commentBody = `Comment ${run} for the webhook`;
  noUserErrors(
    (
      await graphql(
        `mutation AddComment($input: AddCommentInput!) { addComment(input: $input) { comment { id } errors { message path code } } }`,
        { input: { articleId: article.id, body: commentBody } },
        b.token,
      )
    ).addComment,
    'addComment',
  );
  ok(`${b.username} commented on ${article.slug}`);
  const commented = await delivery('comment.created');
  ok('comment.created delivered');

  const requests = [
    checkRequest(
      'user.followed (before the rotation)',
      followed,
      [{ label: 'the creation secret', secret: secret1 }],
      [
        { label: 'the rotated secret (issued after this delivery)', secret: secret2 },
        { label: 'an unrelated secret', secret: stranger },
      ],
    ),
    checkRequest(
      'comment.created (after the rotation)',
      commented,
      [
        { label: 'the new secret', secret: secret2 },
        { label: 'the previous secret', secret: secret1 },
      ],
      [{ label: 'an unrelated secret', secret: stranger }],
    ),
  ];
  if (followed.headers['webhook-id'] === commented.headers['webhook-id']) {
    failures.push(`both deliveries carry webhook-id ${followed.headers['webhook-id']}`);
  }
  const unexpected = received.map(typeOf).filter((type) => !['user.followed', 'comment.created'].includes(type));
  if (unexpected.length) failures.push(`deliveries of event types the endpoint is not subscribed to: ${unexpected.join(', ')}`);

  // The same requests through the PyPI package.
  await mkdir(dirname(recordPath), { recursive: true });
  await writeFile(recordPath, `${JSON.stringify({ graphql: endpoint, receiver: hookUrl, requests }, null, 2)}\n`);
  console.log(`     saved the requests to ${recordPath}; verifying them with ${python} e2e/verify_webhooks.py`);
  const py = spawnSync(python, [join(here, 'verify_webhooks.py'), recordPath], { stdio: 'inherit', timeout: 60_000 });
  if (py.error?.code === 'ETIMEDOUT') failures.push('verify_webhooks.py did not finish within 60 s');
  else if (py.error) failures.push(`could not run ${python}: ${py.error.message}`);
  else if (py.status !== 0) failures.push(`verify_webhooks.py (PyPI standardwebhooks) exited with ${py.status ?? py.signal}`);

  // What the server recorded about the deliveries.
  const deadline = Date.now() + WAIT_MS;
  let deliveries = [];
  for (;;) {
    const viewer = (
      await graphql(
        `query WebhookDeliveries {
          viewer { webhookEndpoints(first: 10) { nodes { id url deliveries(first: 20) {
            nodes { id eventType status attempts responseStatus lastError deliveredAt }
          } } } }
        }`,
        {},
        a.token,
      )
    ).viewer;
    const endpoints = viewer?.webhookEndpoints?.nodes ?? [];
    const ours = endpoints.find((node) => node.id === hook.id);
    if (!ours) fail(`viewer.webhookEndpoints does not list endpoint ${hook.id} (got ${JSON.stringify(endpoints)})`);
    deliveries = ours.deliveries.nodes;
    const settled = ['USER_FOLLOWED', 'COMMENT_CREATED'].every((type) =>
      deliveries.some((node) => node.eventType === type && node.status === 'SUCCEEDED'),
    );
    if (settled || Date.now() > deadline) break;
    await sleep(250);
  }
  for (const type of ['USER_FOLLOWED', 'COMMENT_CREATED']) {
    const node = deliveries.find((candidate) => candidate.eventType === type);
    if (!node) {
      failures.push(`viewer.webhookEndpoints: no ${type} delivery listed (got ${JSON.stringify(deliveries)})`);
    } else if (node.status !== 'SUCCEEDED' || node.responseStatus !== 200 || !(node.attempts >= 1)) {
      failures.push(`viewer.webhookEndpoints: ${type} delivery is ${JSON.stringify(node)}, expected SUCCEEDED with responseStatus 200`);
    } else {
      ok(`viewer.webhookEndpoints lists the ${type} delivery: SUCCEEDED after ${node.attempts} attempt(s), response ${node.responseStatus}`);
    }
  }
}

try {
  await main();
} catch (error) {
  failures.push(error.message);
} finally {
  receiver.closeAllConnections();
  receiver.close();
}
if (failures.length) {
  console.error(`\n${failures.length} failure(s):\n  ${failures.join('\n  ')}`);
  process.exit(1);
}
console.log('every webhook delivery verified with npm and PyPI standardwebhooks');
