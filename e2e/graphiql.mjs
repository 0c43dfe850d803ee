// Opens the server's GraphiQL page in Chromium and runs a query as a freshly
// signed-in user. Fails when the page reaches for anything but its own origin
// (every other request is aborted, so the page must work offline), when the
// browser reports a console error, a page error or a Content-Security-Policy
// violation, or when the result does not show the user's name.
//   node e2e/graphiql.mjs http://127.0.0.1:8080
// Needs Chromium at /usr/bin/chromium (or CHROMIUM_PATH). Saves a screenshot
// to e2e/artifacts/graphiql.png.
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const base = (process.argv[2] ?? '').replace(/\/+$/, '');
if (!/^https?:\/\//.test(base)) {
  console.error('usage: node e2e/graphiql.mjs <base URL of the server, e.g. http://127.0.0.1:8080>');
  process.exit(2);
}
const origin = new URL(base).origin;
const endpoint = `${base}/graphql`;
const executablePath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const screenshot = join(dirname(fileURLToPath(import.meta.url)), 'artifacts', 'graphiql.png');
const TIMEOUT_MS = 30_000;

const problems = [];
const fail = (message) => {
  throw new Error(message);
};

async function graphql(query, variables, token) {
  const response = await fetch(endpoint, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json',
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
    body: JSON.stringify({ query, variables }),
  });
  const body = await response.json().catch(() => null);
  if (!body || body.errors) {
    fail(`${endpoint} answered ${response.status}: ${JSON.stringify(body)}`);
  }
  return body.data;
}

async function signUpAndSignIn() {
  const username = `graphiql_${randomBytes(6).toString('hex')}`;
  const email = `${username}@example.com`;
  const password = `pw-${randomBytes(12).toString('hex')}`;
  const created = await graphql(
    `mutation SignUp($input: CreateUserInput!) {
      createUser(input: $input) { user { username } errors { path code message } }
    }`,
    { input: { username, email, password } },
  );
  if (created.createUser.errors.length > 0) {
    fail(`createUser refused: ${JSON.stringify(created.createUser.errors)}`);
  }
  const signedIn = await graphql(
    `mutation SignIn($input: SignInUserInput!) {
      signInUser(input: $input) { token errors { path code message } }
    }`,
    { input: { email, password } },
  );
  const { token, errors } = signedIn.signInUser;
  if (!token) fail(`signInUser refused: ${JSON.stringify(errors)}`);
  return { username, token };
}

// The CodeMirror 5 editors GraphiQL renders keep their instance on the
// wrapper element; these helpers reach them from the page.
async function editorValue(page, selector) {
  return page.evaluate((sel) => {
    const wrapper = [...document.querySelectorAll(sel)].find((e) => e.offsetParent !== null);
    return wrapper ? wrapper.CodeMirror.getValue() : null;
  }, selector);
}

async function setEditorValue(page, selector, value) {
  await page.waitForFunction(
    (sel) => [...document.querySelectorAll(sel)].some((e) => e.offsetParent !== null && e.CodeMirror),
    selector,
    { timeout: TIMEOUT_MS },
  );
  await page.evaluate(
    ([sel, text]) => {
      const wrapper = [...document.querySelectorAll(sel)].find((e) => e.offsetParent !== null);
      wrapper.CodeMirror.setValue(text);
    },
    [selector, value],
  );
}

const QUERY_EDITOR = '.graphiql-query-editor .CodeMirror';
const HEADERS_EDITOR = 'section.graphiql-editor-tool[aria-label="Headers"] .graphiql-editor:not(.hidden) .CodeMirror';
const RESPONSE = '.graphiql-response .CodeMirror';

async function run() {
  const { username, token } = await signUpAndSignIn();
  console.log(`signed in as ${username}`);

  const userDataDir = await mkdtemp(join(tmpdir(), 'conduit-graphiql-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    viewport: { width: 1400, height: 900 },
  });
  const blocked = [];
  try {
    await context.route('**/*', (route) => {
      const url = route.request().url();
      if (url.startsWith('data:') || url.startsWith('blob:') || new URL(url).origin === origin) {
        return route.continue();
      }
      blocked.push(url);
      return route.abort('blockedbyclient');
    });
    await context.exposeBinding('__conduitCspViolation', (_source, violation) => {
      problems.push(`CSP violation: ${violation}`);
    });
    await context.addInitScript(() => {
      document.addEventListener('securitypolicyviolation', (e) => {
        // The check's own marker script (see lastReportsArrived) is refused
        // on purpose: not a problem of the page.
        if (e.target?.dataset?.conduitMarker) return;
        window.__conduitCspViolation(
          `${e.effectiveDirective} blocked ${e.blockedURI || 'inline'} (${e.sourceFile || 'page'}:${e.lineNumber})`,
        );
      });
    });

    const page = context.pages()[0] ?? (await context.newPage());
    page.on('console', (message) => {
      if (message.type() === 'error') problems.push(`console error: ${message.text()}`);
    });
    page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
    page.on('response', (response) => {
      if (response.status() >= 400) problems.push(`HTTP ${response.status()} for ${response.url()}`);
    });

    const response = await page.goto(endpoint, { waitUntil: 'load', timeout: TIMEOUT_MS });
    if (!response || !response.ok()) fail(`GET ${endpoint} answered ${response?.status()}`);
    const type = response.headers()['content-type'] ?? '';
    if (!type.startsWith('text/html')) fail(`GET ${endpoint} answered ${type}, not HTML`);
    const csp = response.headers()['content-security-policy'] ?? '';
    console.log(`page CSP: ${csp || '(none)'}`);
    if (!/script-src 'self'/.test(csp) || /'unsafe-(inline|eval)'/.test(csp)) {
      fail(`the page must be served with a strict CSP (script-src 'self', nothing unsafe), got: ${csp || 'none'}`);
    }

    // The default document explains how to authenticate.
    await checkDefaultQuery(page);

    // The headers pane is open by default.
    await page.waitForSelector('.graphiql-editor-tools button[data-name="headers"].active', {
      timeout: TIMEOUT_MS,
    });
    await setEditorValue(page, HEADERS_EDITOR, JSON.stringify({ Authorization: `Bearer ${token}` }, null, 2));
    await setEditorValue(page, QUERY_EDITOR, '{ viewer { user { username } } }');
    // GraphiQL parses the editor's text after a short delay; until then the
    // button still offers the default document's several operations.
    await page.waitForSelector('button.graphiql-execute-button:not([aria-haspopup])', { timeout: TIMEOUT_MS });
    await page.click('button.graphiql-execute-button');

    await page
      .waitForFunction(
        ([sel, name]) =>
          [...document.querySelectorAll(sel)].some((e) => (e.innerText || '').includes(`"${name}"`)),
        [RESPONSE, username],
        { timeout: TIMEOUT_MS },
      )
      .catch(async () => {
        fail(`the result panel does not show ${username}: ${await editorValue(page, RESPONSE)}`);
      });
    const result = JSON.parse(await editorValue(page, RESPONSE));
    if (result?.data?.viewer?.user?.username !== username) {
      fail(`unexpected result: ${JSON.stringify(result)}`);
    }
    console.log(`result panel shows ${JSON.stringify(result)}`);

    // A subscription runs over a WebSocket: the result panel shows a
    // comment written after it started.
    await checkSubscription(page, token);

    // The schema documentation is one click away.
    await page.click('button[aria-label="Show Documentation Explorer"]');
    await page.waitForSelector('.graphiql-doc-explorer', { timeout: TIMEOUT_MS });
    await page.waitForFunction(
      () => /Mutation/.test(document.querySelector('.graphiql-doc-explorer')?.innerText ?? ''),
      null,
      { timeout: TIMEOUT_MS },
    );

    // Dialogs lock page scrolling with a style element, which the CSP
    // refuses unless the page applies it another way: open one to check.
    await page.click('button[aria-label="Open settings dialog"]');
    await page.waitForSelector('[role="dialog"]', { timeout: TIMEOUT_MS });
    await page.keyboard.press('Escape');
    await page.waitForSelector('[role="dialog"]', { state: 'detached', timeout: TIMEOUT_MS });

    await mkdir(dirname(screenshot), { recursive: true });
    await page.screenshot({ path: screenshot });
    console.log(`screenshot: ${screenshot}`);

    // Violations are reported asynchronously, in order: one caused now, on
    // purpose, arrives after every earlier one.
    await lastReportsArrived(page);
  } finally {
    problems.push(...blocked.map((url) => `request to another origin (aborted): ${url}`));
    await context.close();
    await rm(userDataDir, { recursive: true, force: true });
  }
}

// Runs an inline script, which the CSP refuses, and waits for the console
// error that says so (it names the script's hash); then drops that error
// from the problems. Every report made before it has arrived by then.
async function lastReportsArrived(page) {
  const text = `/* marker ${randomBytes(4).toString('hex')} */`;
  const hash = `sha256-${createHash('sha256').update(text).digest('base64')}`;
  const reported = page.waitForEvent('console', {
    predicate: (message) => message.text().includes(hash),
    timeout: TIMEOUT_MS,
  });
  await page.evaluate((script) => {
    const element = document.createElement('script');
    element.dataset.conduitMarker = 'yes';
    element.textContent = script;
    document.head.appendChild(element);
  }, text);
  await reported.catch(() => {
    fail(`the CSP's report of a refused inline script (${hash}) did not arrive within ${TIMEOUT_MS} ms`);
  });
  for (let i = problems.length - 1; i >= 0; i -= 1) {
    if (problems[i].includes(hash)) problems.splice(i, 1);
  }
}

async function checkSubscription(page, token) {
  const article = await graphql(
    `mutation($input: CreateArticleInput!) { createArticle(input: $input) { article { id } } }`,
    { input: { title: `Live ${randomBytes(4).toString('hex')}`, description: 'd', body: 'b', tagList: [] } },
    token,
  );
  const id = article.createArticle.article.id;
  await setEditorValue(
    page,
    QUERY_EDITOR,
    `subscription { commentEvents(articleId: "${id}") { change comment { body } } }`,
  );
  await page.waitForSelector('button.graphiql-execute-button:not([aria-haspopup])', { timeout: TIMEOUT_MS });
  await page.click('button.graphiql-execute-button');
  const body = `pushed ${randomBytes(4).toString('hex')}`;
  // Comment until the subscription (which opens a socket first) sees one.
  const deadline = Date.now() + TIMEOUT_MS;
  let shown = false;
  while (!shown && Date.now() < deadline) {
    await graphql(
      `mutation($i: AddCommentInput!) { addComment(input: $i) { errors { code } } }`,
      { i: { articleId: id, body } },
      token,
    );
    shown = await page
      .waitForFunction(
        ([sel, text]) => [...document.querySelectorAll(sel)].some((e) => (e.innerText || '').includes(text)),
        [RESPONSE, body],
        { timeout: 2_000 },
      )
      .then(() => true)
      .catch(() => false);
  }
  if (!shown) fail(`the subscription never showed the comment: ${await editorValue(page, RESPONSE)}`);
  console.log(`subscription result panel shows ${await editorValue(page, RESPONSE)}`);
  // Stop it (the button toggles while a subscription runs).
  await page.click('button.graphiql-execute-button');
}

async function checkDefaultQuery(page) {
  await page.waitForFunction(
    (sel) => [...document.querySelectorAll(sel)].some((e) => e.CodeMirror && e.CodeMirror.getValue()),
    QUERY_EDITOR,
    { timeout: TIMEOUT_MS },
  );
  const text = await editorValue(page, QUERY_EDITOR);
  if (!text.startsWith('#') || !text.includes('signInUser') || !text.includes('Authorization')) {
    fail(`the default document does not explain signing in:\n${text}`);
  }
}

try {
  await run();
} catch (error) {
  problems.unshift(error.message);
}
if (problems.length > 0) {
  console.error(`GraphiQL check failed:\n- ${problems.join('\n- ')}`);
  process.exit(1);
}
console.log('GraphiQL check passed');
