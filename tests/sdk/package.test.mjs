// The npm package as a user gets it: `npm pack` npm/, put the tarball into a fresh project's
// node_modules, bundle an app with esbuild, and run the bundle in Chromium against the hub.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync, readdirSync, rmSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setup, serveStatic, patient, uid, ROOT, NPM } from './harness.mjs';

let env;
let dir;
before(async () => {
  env = await setup();
  dir = mkdtempSync(join(tmpdir(), 'fhircast-sdk-pack-'));
});
after(async () => {
  await env?.teardown();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('packaging: the packed tarball installs into a fresh project, bundles with esbuild, and works in Chromium', async () => {
  // npm pack: exactly the files package.json lists.
  const packed = JSON.parse(execFileSync('npm', ['pack', '--json', '--pack-destination', dir], { cwd: NPM, encoding: 'utf8' }))[0];
  const files = packed.files.map((f) => f.path).sort();
  assert.deepEqual(files, ['CHANGELOG.md', 'README.md', 'bridge.d.ts', 'embedded.d.ts', 'index.d.ts', 'package.json', 'pkg/bridge.js', 'pkg/embedded.js', 'pkg/fhircast_sdk_bg.wasm', 'pkg/index.js', 'pkg/react.js', 'pkg/status.js', 'react.d.ts', 'status.d.ts', 'wasm.d.ts']);
  const manifest = JSON.parse(readFileSync(join(NPM, 'package.json'), 'utf8'));
  assert.equal(manifest.type, 'module');
  assert.equal(Object.keys(manifest.exports['.'])[0], 'types', 'types first in exports');
  assert.equal(manifest.sideEffects, false);

  // "Install" it: unpack into node_modules, as npm would (no registry involved).
  const project = join(dir, 'app');
  mkdirSync(join(project, 'node_modules'), { recursive: true });
  execFileSync('tar', ['-xzf', join(dir, packed.filename), '-C', join(project, 'node_modules')]);
  renameSync(join(project, 'node_modules', 'package'), join(project, 'node_modules', 'fhircast-sdk'));
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
  writeFileSync(
    join(project, 'app.js'),
    `import init, { FhircastClient } from 'fhircast-sdk';
import wasmUrl from 'fhircast-sdk/wasm';
const q = new URLSearchParams(location.search);
await init(wasmUrl);
const client = await FhircastClient.connect({
  hubUrl: q.get('hub'),
  topic: q.get('topic'),
  events: ['Patient-open'],
  subscriberName: 'Bundled app',
  onContextChange: (c) => (document.body.dataset.patient = c?.anchor ?? ''),
});
window.client = client;
window.ready = true;
`,
  );
  writeFileSync(join(project, 'index.html'), '<!doctype html><meta charset="utf-8"><title>bundled</title><script type="module" src="./app.js"></script>');
  execFileSync(
    join(ROOT, 'node_modules', '.bin', 'esbuild'),
    ['app.js', '--bundle', '--format=esm', '--minify', '--outdir=dist', '--loader:.wasm=file', '--log-level=warning'],
    { cwd: project, stdio: 'pipe' },
  );
  writeFileSync(join(project, 'dist', 'index.html'), readFileSync(join(project, 'index.html')));
  const out = readdirSync(join(project, 'dist')).sort();
  assert.ok(out.includes('app.js'));
  assert.ok(out.some((f) => /^fhircast_sdk_bg-.*\.wasm$/.test(f)), `the wasm is emitted next to the bundle: ${out}`);

  // Run the bundle.
  env.hub.topic = uid('topic');
  const site = await serveStatic({ '/dist/': join(project, 'dist') });
  try {
    const context = await env.browser.newContext();
    const page = await context.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(e));
    await page.goto(`${site.origin}/dist/index.html?${new URLSearchParams({ hub: env.hub.base, topic: env.hub.topic })}`);
    await page.waitForFunction(() => window.ready === true, null, { timeout: 10000 });
    await env.hub.post(env.hub.event('Patient-open', [patient('p42')]));
    await page.waitForFunction(() => document.body.dataset.patient === 'Patient/p42', null, { timeout: 5000 });
    assert.equal(await page.evaluate(() => client.status().state), 'in-sync');
    await page.evaluate(() => client.close());
    assert.deepEqual(errors, []);
    await context.close();
  } finally {
    await site.close();
  }
});

test('packaging: `npm publish --dry-run` is clean (nothing for npm to correct or refuse; no registry asked)', () => {
  // An unreachable registry: a dry run must not need one. It warns only that publishing for
  // real needs a login.
  const r = spawnSync('npm', ['publish', '--dry-run', '--registry=http://127.0.0.1:9'], { cwd: NPM, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const warnings = r.stderr.split('\n').filter((l) => l.startsWith('npm warn') && !/requires you to be logged in/.test(l));
  assert.deepEqual(warnings, []);
  assert.match(r.stderr, /fhircast-sdk@0\.1\.0/);
  assert.match(r.stderr, /total files: 15/);
});

