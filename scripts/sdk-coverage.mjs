// The SDK's [SUB] coverage table (tests/sdk/README.md), kept true by make test.
//
// Every item of ../shared/spec/requirements.md tagged [SUB] or [BOTH] must have a row in the
// table between <!-- coverage:begin --> and <!-- coverage:end -->. A row's "tests naming it" cell
// is generated from the Chromium tests' names: a test names item N when the part of its name
// before the first ": " carries `reqN` (e.g. test('req75 req94: "defer" answers 202 ...')). A
// row must then have a test, or a reason in its last cell why the item is not the SDK's to
// prove (decided by the app, by the hub, by the platform).
//
//   node scripts/sdk-coverage.mjs          rewrite the generated cells and the summary
//   node scripts/sdk-coverage.mjs --check  fail (exit 1) if the file is stale, an item has no
//                                          row, or a row has neither a test nor a reason
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const DOC = path.join(ROOT, 'tests/sdk/README.md');
const TESTS = path.join(ROOT, 'tests/sdk');
const SPEC = process.env.FHIRCAST_REQUIREMENTS ?? path.join(ROOT, '../shared/spec/requirements.md');
const check = process.argv.includes('--check');

// The items the subscriber owns: numbered lines of the digest tagged [SUB] or [BOTH].
function subscriberItems() {
  let text;
  try {
    text = fs.readFileSync(SPEC, 'utf8');
  } catch {
    return null; // A checkout without ../shared: the table's own rows are checked only.
  }
  const items = new Map();
  for (const line of text.split('\n')) {
    const m = /^(\d+)\.\s+(.*)$/.exec(line);
    if (!m) continue;
    const tag = /\[BOTH\]/.test(m[2]) ? 'BOTH' : /\[SUB\]/.test(m[2]) ? 'SUB' : null;
    if (tag && !items.has(m[1])) items.set(m[1], tag);
  }
  return items;
}

// Item number -> labels of the tests naming it.
function testsByItem() {
  const byItem = new Map();
  for (const file of fs.readdirSync(TESTS).filter((f) => f.endsWith('.test.mjs')).sort()) {
    const src = fs.readFileSync(path.join(TESTS, file), 'utf8');
    const short = file.replace(/\.test\.mjs$/, '');
    for (const m of src.matchAll(/\btest\(\s*(['"`])((?:\\.|(?!\1).)*)\1/gs)) {
      const name = m[2].replace(/\\(.)/g, '$1');
      const cut = name.indexOf(': ');
      const prefix = cut < 0 ? '' : name.slice(0, cut);
      const desc = (cut < 0 ? name : name.slice(cut + 2)).replace(/\|/g, '\\|');
      for (const r of prefix.matchAll(/\breq(\d+)\b/g)) {
        const list = byItem.get(r[1]) ?? [];
        const label = `\`${short}\` › ${desc}`;
        if (!list.includes(label)) list.push(label);
        byItem.set(r[1], list);
      }
    }
  }
  return byItem;
}

const doc = fs.readFileSync(DOC, 'utf8');
const tests = testsByItem();
const owned = subscriberItems();
const problems = [];
const rows = new Set();
let inTable = false;
let tested = 0;
let leftOut = 0;
const out = [];
for (const line of doc.split('\n')) {
  if (line.includes('<!-- coverage:begin -->')) inTable = true;
  if (line.includes('<!-- coverage:end -->')) inTable = false;
  const cells = line.split(/(?<!\\)\|/);
  const key = cells[1]?.trim() ?? '';
  const m = /^req (\d+)$/.exec(key);
  if (!inTable || !line.startsWith('|') || !m) {
    out.push(line);
    continue;
  }
  // | item | tag | what | tests naming it | left out because |
  if (cells.length !== 7) problems.push(`row "${key}" does not have 5 cells`);
  const named = tests.get(m[1]) ?? [];
  cells[4] = ` ${named.join('<br>')} `;
  const reason = (cells[5] ?? '').trim();
  if (named.length) tested++;
  else if (reason) leftOut++;
  else problems.push(`req ${m[1]} has neither a test naming it nor a reason`);
  if (rows.has(m[1])) problems.push(`req ${m[1]} has two rows`);
  rows.add(m[1]);
  out.push(cells.join('|'));
}
if (owned) {
  for (const [n, tag] of owned) if (!rows.has(n)) problems.push(`req ${n} [${tag}] has no row`);
}
for (const n of tests.keys()) if (!rows.has(n)) problems.push(`req ${n} is named by a test but has no row`);
const summary = `${rows.size} items listed: ${tested} named by a test, ${leftOut} left out with a reason.`;
const digest = owned ? `every one of the digest's ${owned.size} [SUB]/[BOTH] items has a row` : `${SPEC} not found: rows checked only`;
let text = out.join('\n');
text = text.replace(/(<!-- summary:begin -->\n)[\s\S]*?(\n<!-- summary:end -->)/, `$1${summary}$2`);

if (check) {
  if (text !== doc) problems.push('tests/sdk/README.md is stale: run node scripts/sdk-coverage.mjs');
  if (problems.length) {
    console.error(problems.map((p) => `sdk-coverage: ${p}`).join('\n'));
    process.exit(1);
  }
  console.log(`tests/sdk/README.md is up to date: ${summary} (${digest})`);
} else {
  fs.writeFileSync(DOC, text);
  console.log(`tests/sdk/README.md: ${summary} (${digest})`);
  if (problems.length) {
    console.error(problems.map((p) => `sdk-coverage: ${p}`).join('\n'));
    process.exit(1);
  }
}
