// Runs the graphql-http package's server audit (GraphQL over HTTP spec)
// against a running server. Fails when any MUST or SHOULD fails (the README
// promises every one of both passes); reports MAY results.
//   node graphql-http-audit.mjs http://127.0.0.1:8080/graphql
import { serverAudits } from 'graphql-http';

const url = process.argv[2];
if (!url) {
  console.error('usage: node graphql-http-audit.mjs <url>');
  process.exit(2);
}

const passed = { MUST: 0, SHOULD: 0, MAY: 0 };
const total = { MUST: 0, SHOULD: 0, MAY: 0 };
for (const audit of serverAudits({ url })) {
  const level = audit.name.split(' ')[0];
  const result = await audit.fn();
  total[level] += 1;
  if (result.status === 'ok') {
    passed[level] += 1;
  } else {
    console.log(`${result.status} ${audit.name}: ${result.reason}`);
  }
}
for (const level of ['MUST', 'SHOULD', 'MAY']) {
  console.log(`graphql-http audit ${level}: ${passed[level]} of ${total[level]} passed`);
}
const kept = ['MUST', 'SHOULD'].every((level) => passed[level] === total[level]);
process.exit(kept && total.MUST > 0 ? 0 : 1);
