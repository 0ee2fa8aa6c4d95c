// The npm package as a user gets it: `npm pack` npm/, put the tarball into a fresh project's
// node_modules, and build an app with esbuild, and with Vite and TypeScript, and run it in
// Chromium against the hub; and run the testing kit's vitest example (examples/vitest) there.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync, readdirSync, rmSync, renameSync, symlinkSync, cpSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setup, serveStatic, patient, uid, ROOT, NPM } from './harness.mjs';

let env;
let dir;
let packed;
before(async () => {
  env = await setup();
  dir = mkdtempSync(join(tmpdir(), 'fhircast-sdk-pack-'));
  packed = JSON.parse(execFileSync('npm', ['pack', '--json', '--pack-destination', dir], { cwd: NPM, encoding: 'utf8' }))[0];
});
after(async () => {
  await env?.teardown();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/**
 * A fresh project with the tarball "installed" (unpacked into node_modules, as npm would, no
 * registry involved) and this repository's dev tools (vite, vitest, typescript) linked next
 * to it, as `npm install -D` would have put them.
 */
function project(name, { tools = false } = {}) {
  const p = join(dir, name);
  mkdirSync(join(p, 'node_modules'), { recursive: true });
  const unpacked = join(dir, `unpack-${name}`);
  mkdirSync(unpacked);
  execFileSync('tar', ['-xzf', join(dir, packed.filename), '-C', unpacked]);
  renameSync(join(unpacked, 'package'), join(p, 'node_modules', 'fhircast-sdk'));
  if (tools) {
    for (const entry of readdirSync(join(ROOT, 'node_modules'))) {
      if (entry === '.bin' || entry.startsWith('.') || entry === 'fhircast-sdk') continue;
      symlinkSync(join(ROOT, 'node_modules', entry), join(p, 'node_modules', entry));
    }
  }
  writeFileSync(join(p, 'package.json'), JSON.stringify({ name, private: true, type: 'module' }));
  return p;
}

/** Opens `url` in Chromium, waits for `window.ready`, publishes a Patient-open from another
 * process (HTTP), and waits for the page to show it. */
async function followsInChromium(url) {
  const context = await env.browser.newContext();
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e));
  // Every request but the favicon (which these pages do not have) succeeds.
  page.on('response', (r) => r.status() >= 400 && !r.url().endsWith('/favicon.ico') && errors.push(`${r.status()} ${r.url()}`));
  page.on('console', (m) => m.type() === 'error' && !m.text().startsWith('Failed to load resource') && errors.push(m.text()));
  await page.goto(url);
  await page.waitForFunction(() => window.ready === true, null, { timeout: 10000 });
  await env.hub.post(env.hub.event('Patient-open', [patient('p42')]));
  await page.waitForFunction(() => document.body.dataset.patient === 'Patient/p42', null, { timeout: 5000 });
  assert.equal(await page.evaluate(() => client.status().state), 'in-sync');
  await page.evaluate(() => client.close());
  assert.deepEqual(errors, []);
  await context.close();
}

test('packaging: the packed tarball installs into a fresh project, bundles with esbuild, and works in Chromium', async () => {
  // npm pack: exactly the files package.json lists.
  const files = packed.files.map((f) => f.path).sort();
  assert.deepEqual(files, [
    'CHANGELOG.md', 'README.md', 'bridge.d.ts', 'embedded.d.ts', 'index.d.ts', 'package.json', 'pkg/bridge.js', 'pkg/embedded.js',
    'pkg/fhircast_sdk_bg.wasm', 'pkg/fhircast_testkit_bg.wasm', 'pkg/index.js', 'pkg/react.js', 'pkg/status.js', 'pkg/testing.js',
    'react.d.ts', 'status.d.ts', 'testing.d.ts', 'wasm.d.ts',
  ]);
  const manifest = JSON.parse(readFileSync(join(NPM, 'package.json'), 'utf8'));
  assert.equal(manifest.type, 'module');
  assert.equal(Object.keys(manifest.exports['.'])[0], 'types', 'types first in exports');
  assert.equal(manifest.sideEffects, false);

  const app = project('esbuild-app');
  writeFileSync(
    join(app, 'app.js'),
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
  writeFileSync(join(app, 'index.html'), '<!doctype html><meta charset="utf-8"><title>bundled</title><script type="module" src="./app.js"></script>');
  execFileSync(
    join(ROOT, 'node_modules', '.bin', 'esbuild'),
    ['app.js', '--bundle', '--format=esm', '--minify', '--outdir=dist', '--loader:.wasm=file', '--log-level=warning'],
    { cwd: app, stdio: 'pipe' },
  );
  writeFileSync(join(app, 'dist', 'index.html'), readFileSync(join(app, 'index.html')));
  const out = readdirSync(join(app, 'dist')).sort();
  assert.ok(out.includes('app.js'));
  assert.ok(out.some((f) => /^fhircast_sdk_bg-.*\.wasm$/.test(f)), `the wasm is emitted next to the bundle: ${out}`);
  assert.ok(!out.some((f) => /testkit/.test(f)), `the testing kit's hub is not bundled into an app: ${out}`);

  env.hub.topic = uid('topic');
  const site = await serveStatic({ '/dist/': join(app, 'dist') });
  try {
    await followsInChromium(`${site.origin}/dist/index.html?${new URLSearchParams({ hub: env.hub.base, topic: env.hub.topic })}`);
  } finally {
    await site.close();
  }
});

test('packaging: a Vite + TypeScript app (the vanilla-ts template) type-checks, builds with `vite build`, and follows the hub in Chromium', async () => {
  const app = project('vite-app', { tools: true });
  // create-vite's vanilla-ts template: tsconfig.json as it ships, `tsc && vite build`.
  writeFileSync(
    join(app, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        target: 'ES2022', useDefineForClassFields: true, module: 'ESNext', lib: ['ES2022', 'DOM', 'DOM.Iterable'],
        types: ['vite/client'], skipLibCheck: true, moduleResolution: 'bundler', allowImportingTsExtensions: true,
        verbatimModuleSyntax: true, moduleDetection: 'force', noEmit: true, strict: true, noUnusedLocals: true,
        noUnusedParameters: true, erasableSyntaxOnly: true, noFallthroughCasesInSwitch: true, noUncheckedSideEffectImports: true,
      },
      include: ['src'],
    }),
  );
  mkdirSync(join(app, 'src'));
  writeFileSync(
    join(app, 'src', 'main.ts'),
    `import init, { FhircastClient, FhircastError, type CurrentContext } from 'fhircast-sdk';
import 'fhircast-sdk/status'; // defines <fhircast-status>

const q = new URLSearchParams(location.search);
await init();
function show(context: CurrentContext | null) {
  document.body.dataset.patient = context?.anchor ?? '';
  const patient = context?.resource('patient');
  document.querySelector<HTMLElement>('#patient')!.textContent = patient ? \`Patient \${patient.id}\` : 'No patient';
}
try {
  const client = await FhircastClient.connect({
    hubUrl: q.get('hub') ?? '',
    topic: q.get('topic') ?? '',
    events: ['Patient-open', 'Patient-close'],
    subscriberName: 'Vite app',
    onContextChange: show,
  });
  show(client.currentContext());
  document.querySelector('fhircast-status')!.client = client;
  Object.assign(window, { client, ready: true });
} catch (e) {
  if (e instanceof FhircastError) document.body.textContent = \`\${e.code}: \${e.message}\`;
  throw e;
}
`,
  );
  writeFileSync(
    join(app, 'index.html'),
    '<!doctype html><html><head><meta charset="utf-8"><title>Vite app</title></head><body><fhircast-status></fhircast-status><p id="patient"></p><script type="module" src="/src/main.ts"></script></body></html>',
  );
  const bin = (t) => join(ROOT, 'node_modules', t);
  const tsc = spawnSync(process.execPath, [bin('typescript/bin/tsc'), '-p', '.'], { cwd: app, encoding: 'utf8' });
  assert.equal(tsc.status, 0, `tsc:\n${tsc.stdout}${tsc.stderr}`);
  const vite = spawnSync(process.execPath, [bin('vite/bin/vite.js'), 'build', '--logLevel', 'warn'], { cwd: app, encoding: 'utf8' });
  assert.equal(vite.status, 0, `vite build:\n${vite.stdout}${vite.stderr}`);
  assert.equal(vite.stderr.trim(), '', 'vite build warns about nothing');
  const assets = readdirSync(join(app, 'dist', 'assets'));
  assert.ok(assets.some((f) => /^fhircast_sdk_bg-.*\.wasm$/.test(f)), `vite emits the wasm: ${assets}`);
  assert.ok(!assets.some((f) => /testkit/.test(f)), `the testing kit's hub is not in the app: ${assets}`);

  env.hub.topic = uid('topic');
  const site = await serveStatic({ '/': join(app, 'dist') });
  try {
    await followsInChromium(`${site.origin}/index.html?${new URLSearchParams({ hub: env.hub.base, topic: env.hub.topic })}`);
  } finally {
    await site.close();
  }
});

test('fhircast-sdk/testing: the vitest example (examples/vitest) passes in a fresh project with the packed tarball', () => {
  const app = project('vitest-app', { tools: true });
  for (const f of ['report-app.js', 'report-app.test.js']) cpSync(join(ROOT, 'examples', 'vitest', f), join(app, f));
  const r = spawnSync(
    process.execPath,
    [join(ROOT, 'node_modules', 'vitest', 'vitest.mjs'), 'run', '--reporter=json', '--outputFile=result.json'],
    { cwd: app, encoding: 'utf8', timeout: 120_000, env: { ...process.env, CI: '1' } },
  );
  const result = JSON.parse(readFileSync(join(app, 'result.json'), 'utf8'));
  const failures = result.testResults.flatMap((f) => f.assertionResults.filter((a) => a.status !== 'passed').map((a) => `${a.fullName}: ${a.failureMessages.join('\n')}`));
  assert.deepEqual(failures, [], r.stderr);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(result.numPassedTests, 5);
});

test('packaging: `npm publish --dry-run` is clean (nothing for npm to correct or refuse; no registry asked)', () => {
  // An unreachable registry: a dry run must not need one. It warns only that publishing for
  // real needs a login.
  const r = spawnSync('npm', ['publish', '--dry-run', '--registry=http://127.0.0.1:9', '--fetch-retries=0'], { cwd: NPM, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const warnings = r.stderr.split('\n').filter((l) => l.startsWith('npm warn') && !/requires you to be logged in/.test(l));
  assert.deepEqual(warnings, []);
  assert.match(r.stderr, /fhircast-sdk@0\.1\.0/);
  assert.match(r.stderr, /total files: 18/);
});

