// The package's TypeScript declarations (npm/index.d.ts) compile a typed usage example under
// `tsc --strict`, and reject misuse (the example's @ts-expect-error lines must be errors).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

test('npm types: tsc --noEmit --strict compiles the typed usage example (and rejects misuse)', () => {
  const tsc = join(ROOT, 'node_modules', '.bin', 'tsc');
  const r = spawnSync(tsc, ['-p', join(ROOT, 'tests', 'sdk', 'types', 'tsconfig.json')], { encoding: 'utf8' });
  assert.equal(r.status, 0, `tsc failed:\n${r.stdout}${r.stderr}`);
});
