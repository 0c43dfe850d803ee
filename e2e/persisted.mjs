// Checks the server's persisted documents.
//
// Automatic persisted queries (Apollo's protocol), the default mode:
//   node e2e/persisted.mjs --apq URL1 [URL2]
// With URL2 (a second instance sharing the same Redis), a document registered
// on URL1 must run by hash alone on URL2.
//
// Trusted documents, with the server started with
// TRUSTED_DOCUMENTS=clients/typescript/src/gql/persisted-documents.json:
//   node e2e/persisted.mjs --trusted URL MANIFEST_PATH
//
// A URL is the server's base (http://127.0.0.1:8080) or its /graphql endpoint.
// Every check runs; the script exits non-zero if any failed.
import { createHash, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';

const usage = `usage:
  node e2e/persisted.mjs --apq URL1 [URL2]
  node e2e/persisted.mjs --trusted URL MANIFEST_PATH`;

const sha256 = (text) => createHash('sha256').update(text).digest('hex');
const unique = () => randomBytes(6).toString('hex');
const endpointOf = (url) => {
  const parsed = new URL(url);
  if (!parsed.pathname.endsWith('/graphql')) parsed.pathname = `${parsed.pathname.replace(/\/+$/, '')}/graphql`;
  return parsed.toString();
};
const persistedQuery = (hash) => ({ persistedQuery: { version: 1, sha256Hash: hash } });

const failures = [];
let checks = 0;

async function check(name, fn) {
  checks += 1;
  try {
    const detail = await fn();
    console.log(`ok   ${name}${detail ? ` (${detail})` : ''}`);
  } catch (error) {
    failures.push(name);
    console.log(`FAIL ${name}\n     ${error.message.replace(/\n/g, '\n     ')}`);
  }
}

function expect(condition, message, answer) {
  if (!condition) {
    throw new Error(answer ? `${message}\n got HTTP ${answer.status}: ${answer.text.slice(0, 500)}` : message);
  }
}

// How long one request, body included, may take before its check fails.
const REQUEST_TIMEOUT_MS = 15_000;

// `fetch`, failing with the URL and the wait once REQUEST_TIMEOUT_MS pass.
async function fetchWithin(url, init = {}) {
  try {
    return await fetch(url, { ...init, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
  } catch (error) {
    if (error.name === 'TimeoutError') throw new Error(`no answer from ${url} within ${REQUEST_TIMEOUT_MS} ms`);
    throw error;
  }
}

async function post(endpoint, body, accept = 'application/json') {
  const response = await fetchWithin(endpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept },
    body: JSON.stringify(body),
  });
  return answerOf(response);
}

async function get(endpoint, params, accept = 'application/json') {
  const url = new URL(endpoint);
  for (const [name, value] of Object.entries(params)) {
    url.searchParams.set(name, typeof value === 'string' ? value : JSON.stringify(value));
  }
  return answerOf(await fetchWithin(url, { headers: { accept } }));
}

async function answerOf(response) {
  const text = await response.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {
    // Left null: the checks report the text.
  }
  return { status: response.status, text, json, code: json?.errors?.[0]?.extensions?.code, message: json?.errors?.[0]?.message };
}

// A successful execution: data and no errors.
function expectData(answer, what) {
  expect(answer.json && answer.json.data && !answer.json.errors, `${what}: expected data and no errors`, answer);
}

function expectCode(answer, code, what) {
  expect(answer.code === code, `${what}: expected errors[0].extensions.code ${code}`, answer);
  expect(answer.json.data == null, `${what}: expected no data with ${code}`, answer);
}

async function apq(url1, url2) {
  const endpoint = endpointOf(url1);
  console.log(`automatic persisted queries against ${endpoint}${url2 ? ` and ${endpointOf(url2)}` : ''}`);
  const query = `query PersistedProbe_${unique()} { tags(first: 1) }`;
  const hash = sha256(query);

  await check('an unknown hash alone is PersistedQueryNotFound (HTTP 200, PERSISTED_QUERY_NOT_FOUND)', async () => {
    const answer = await post(endpoint, { extensions: persistedQuery(hash) });
    expect(answer.status === 200, 'expected HTTP 200 for Accept: application/json', answer);
    expect(answer.message === 'PersistedQueryNotFound', 'expected errors[0].message PersistedQueryNotFound', answer);
    expectCode(answer, 'PERSISTED_QUERY_NOT_FOUND', 'unknown hash');
  });

  await check('the query with its hash runs (and registers it)', async () => {
    const answer = await post(endpoint, { query, extensions: persistedQuery(hash) });
    expectData(answer, 'query with hash');
    expect(Array.isArray(answer.json.data.tags), 'expected data.tags', answer);
  });

  await check('the hash alone now runs', async () => {
    const answer = await post(endpoint, { extensions: persistedQuery(hash) });
    expectData(answer, 'hash alone');
    expect(Array.isArray(answer.json.data.tags), 'expected data.tags', answer);
  });

  await check('the hash alone with operationName and variables runs', async () => {
    const withVariables = `query PersistedVariables_${unique()}($first: Int!) { tags(first: $first) }`;
    const h = sha256(withVariables);
    const operationName = withVariables.split(/[ (]/)[1];
    expectData(await post(endpoint, { query: withVariables, variables: { first: 1 }, operationName, extensions: persistedQuery(h) }), 'register');
    const answer = await post(endpoint, { variables: { first: 1 }, operationName, extensions: persistedQuery(h) });
    expectData(answer, 'hash alone with variables');
    expect(answer.json.data.tags.length <= 1, 'expected at most 1 tag', answer);
  });

  const mismatched = `query PersistedMismatch_${unique()} { tags(first: 1) }`;
  const wrongHash = sha256(`${mismatched} `);
  await check('a query whose hash is not its sha256 is refused', async () => {
    const answer = await post(endpoint, { query: mismatched, extensions: persistedQuery(wrongHash) });
    expect(answer.json?.errors?.length > 0, 'expected an error', answer);
    expect(answer.json.data == null, 'expected no data', answer);
    return `HTTP ${answer.status}, code ${answer.code}: ${answer.message}`;
  });

  await check('... and is not stored under the wrong hash', async () => {
    expectCode(await post(endpoint, { extensions: persistedQuery(wrongHash) }), 'PERSISTED_QUERY_NOT_FOUND', 'wrong hash alone');
  });

  await check('GET with a stored hash, URL-encoded extensions and variables, runs', async () => {
    const viaGet = `query PersistedGet_${unique()}($first: Int!) { tags(first: $first) }`;
    const h = sha256(viaGet);
    expectCode(await get(endpoint, { extensions: persistedQuery(h), variables: { first: 2 } }), 'PERSISTED_QUERY_NOT_FOUND', 'GET before registering');
    expectData(await post(endpoint, { query: viaGet, variables: { first: 2 }, extensions: persistedQuery(h) }), 'register');
    const answer = await get(endpoint, { extensions: persistedQuery(h), variables: { first: 2 } });
    expectData(answer, 'GET with hash');
    expect(answer.json.data.tags.length <= 2, 'expected at most 2 tags', answer);
  });

  await check('a graphql-response+json client gets the same PERSISTED_QUERY_NOT_FOUND', async () => {
    const answer = await post(endpoint, { extensions: persistedQuery(sha256(unique())) }, 'application/graphql-response+json');
    expectCode(answer, 'PERSISTED_QUERY_NOT_FOUND', 'unknown hash');
    return `HTTP ${answer.status}`;
  });

  if (url2) {
    const other = endpointOf(url2);
    await check('a hash registered on one instance runs on the other (shared store)', async () => {
      const shared = `query PersistedShared_${unique()} { tags(first: 1) }`;
      const h = sha256(shared);
      expectCode(await post(other, { extensions: persistedQuery(h) }), 'PERSISTED_QUERY_NOT_FOUND', 'second instance before registering');
      expectData(await post(endpoint, { query: shared, extensions: persistedQuery(h) }), 'register on the first instance');
      expectData(await post(other, { extensions: persistedQuery(h) }), 'hash alone on the second instance');
    });
  }
}

// The manifest written by codegen maps `sha256:<hex>` to the document text.
function hexOf(key) {
  return key.startsWith('sha256:') ? key.slice('sha256:'.length) : key;
}

async function trusted(url, manifestPath) {
  const endpoint = endpointOf(url);
  const manifest = JSON.parse(await readFile(manifestPath, 'utf8'));
  const entries = Object.entries(manifest);
  console.log(`trusted documents against ${endpoint} (${entries.length} documents in ${manifestPath})`);
  // A query that takes no variables, e.g. `query Viewer { ... }`.
  const simple = entries.find(([, text]) => /(?:^|\s)query \w+ \{/.test(text));
  if (!simple) throw new Error('the manifest holds no query without variables');
  const [key, text] = simple;
  const hex = hexOf(key);
  expect(sha256(text) === hex, `manifest entry ${key} is not the sha256 of its text`);
  const operation = /(?:^|\s)query (\w+) \{/.exec(text)[1];
  console.log(`using ${operation} (${key})`);

  await check('a manifest hash alone runs', async () => {
    expectData(await post(endpoint, { extensions: persistedQuery(hex) }), 'hash alone');
  });

  await check('a manifest hash alone runs with operationName', async () => {
    expectData(await post(endpoint, { operationName: operation, extensions: persistedQuery(hex) }), 'hash alone');
  });

  await check('the manifest key itself ("sha256:<hex>") runs as the hash', async () => {
    expectData(await post(endpoint, { extensions: persistedQuery(key) }), 'prefixed hash');
  });

  const signIn = entries.find(([, t]) => /(?:^|\s)mutation SignIn\(/.test(t));
  if (signIn) {
    await check('a manifest mutation runs by hash with variables', async () => {
      const answer = await post(endpoint, {
        operationName: 'SignIn',
        variables: { input: { email: `nobody_${unique()}@example.com`, password: 'not-the-password' } },
        extensions: persistedQuery(hexOf(signIn[0])),
      });
      expectData(answer, 'SignIn by hash');
      const codes = (answer.json.data.signInUser?.errors ?? []).map((e) => e.code);
      expect(codes.includes('INVALID_CREDENTIALS'), 'expected INVALID_CREDENTIALS in signInUser.errors', answer);
    });
  }

  await check('a query not in the manifest is refused (PERSISTED_QUERY_NOT_TRUSTED)', async () => {
    const answer = await post(endpoint, { query: `query NotTrusted_${unique()} { tags(first: 1) }` });
    expectCode(answer, 'PERSISTED_QUERY_NOT_TRUSTED', 'arbitrary query');
    return `HTTP ${answer.status}`;
  });

  await check('an unknown hash is PERSISTED_QUERY_NOT_FOUND', async () => {
    expectCode(await post(endpoint, { extensions: persistedQuery(sha256(unique())) }), 'PERSISTED_QUERY_NOT_FOUND', 'unknown hash');
  });

  await check('registering a new document (query + its hash) is refused (PERSISTED_QUERY_NOT_TRUSTED)', async () => {
    const query = `query Register_${unique()} { tags(first: 1) }`;
    const h = sha256(query);
    const answer = await post(endpoint, { query, extensions: persistedQuery(h) });
    expectCode(answer, 'PERSISTED_QUERY_NOT_TRUSTED', 'registration');
    expectCode(await post(endpoint, { extensions: persistedQuery(h) }), 'PERSISTED_QUERY_NOT_FOUND', 'the refused hash alone');
  });

  await check('the exact text of a manifest document is accepted as query', async () => {
    expectData(await post(endpoint, { query: text }), 'manifest text');
  });

  await check('the exact text of a manifest document with its hash is accepted', async () => {
    expectData(await post(endpoint, { query: text, extensions: persistedQuery(hex) }), 'manifest text with hash');
  });
}

const [mode, ...args] = process.argv.slice(2);
try {
  if (mode === '--apq' && args.length >= 1 && args.length <= 2) {
    await apq(args[0], args[1]);
  } else if (mode === '--trusted' && args.length === 2) {
    await trusted(args[0], args[1]);
  } else {
    console.error(usage);
    process.exit(2);
  }
} catch (error) {
  console.error(`persisted documents check could not run: ${error.message}`);
  process.exit(1);
}
console.log(`${checks - failures.length} of ${checks} persisted-document checks passed`);
process.exit(failures.length === 0 ? 0 : 1);
