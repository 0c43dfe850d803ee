// Proves that codegen refuses an operation that does not match the schema:
// copies this project (without node_modules, which is linked) and the schema
// to a temporary directory, adds an operation selecting a field the schema
// does not have, runs codegen there and expects it to fail, naming the field.
//   node check-invalid.mjs
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const schema = resolve(here, '..', '..', 'schema.graphql');
const codegen = join(here, 'node_modules', '.bin', 'graphql-codegen');
if (!existsSync(codegen)) {
  console.error('node_modules is missing: run npm ci first');
  process.exit(2);
}

const work = mkdtempSync(join(tmpdir(), 'conduit-codegen-invalid-'));
const project = join(work, 'clients', 'typescript');
let failed = false;
try {
  for (const entry of ['package.json', 'codegen.ts', 'tsconfig.json', 'src/operations']) {
    cpSync(join(here, entry), join(project, entry), { recursive: true });
  }
  cpSync(schema, join(work, 'schema.graphql'));
  symlinkSync(join(here, 'node_modules'), join(project, 'node_modules'), 'dir');
  writeFileSync(
    join(project, 'src', 'operations', 'invalid.graphql'),
    'query InvalidOperation {\n  viewer {\n    user {\n      username\n      favoriteColor\n    }\n  }\n}\n',
  );

  const result = spawnSync(codegen, ['--config', 'codegen.ts'], {
    cwd: project,
    encoding: 'utf8',
    env: { ...process.env, CI: 'true', NO_COLOR: '1', FORCE_COLOR: '0' },
  });
  const output = `${result.stdout}\n${result.stderr}`;
  const lines = output.split('\n').filter((line) => /favoriteColor|Cannot query field|failed|Error/i.test(line));
  console.log(`codegen exited with ${result.status}; it said:\n  ${lines.slice(0, 8).join('\n  ') || output.trim()}`);
  if (result.status === 0) {
    console.error('FAIL: codegen accepted an operation selecting a field the schema does not have');
    failed = true;
  } else if (!/favoriteColor/.test(output)) {
    console.error('FAIL: codegen failed, but not because of the unknown field');
    failed = true;
  } else {
    console.log('ok: an operation that does not match the schema fails codegen');
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
