// fhircast-sdk/react (issue 15): the hooks in a real React 19 development build (StrictMode:
// every component mounted, unmounted and mounted again) in Chromium against the hub: one
// subscription, not two; the context and status re-render; the latest handler answers;
// unmounting unsubscribes.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync, copyFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'esbuild';
import { setup, serveStatic, patient, uid, eventually, ROOT, NPM } from './harness.mjs';

let env;
let dir;
let site;
before(async () => {
  env = await setup();
  dir = mkdtempSync(join(tmpdir(), 'fhircast-react-'));
  // The package as an app gets it (node_modules/fhircast-sdk), React from the repository's.
  mkdirSync(join(dir, 'node_modules'));
  symlinkSync(NPM, join(dir, 'node_modules', 'fhircast-sdk'));
  writeFileSync(
    join(dir, 'app.jsx'),
    `import { StrictMode, useState } from 'react';
import { createRoot } from 'react-dom/client';
import { useFhircast } from 'fhircast-sdk/react';

const q = new URLSearchParams(location.search);
function Viewer() {
  const [refusing, setRefusing] = useState(false);
  window.setRefusing = setRefusing;
  const { client, context, status, error } = useFhircast({
    hubUrl: q.get('hub'),
    topic: q.get('topic'),
    events: ['Patient-open', 'SyncError'],
    subscriberName: 'React viewer',
    // A new function every render: the latest one answers.
    on: { 'Patient-open': () => (refusing ? 'refuse' : 'accept') },
  });
  window.client = client;
  return (
    <p>
      <span id="patient">{context?.anchor ?? 'none'}</span> <span id="status">{status.state}</span>
      {error && <span id="error">{error.message}</span>}
    </p>
  );
}
function App() {
  const [shown, setShown] = useState(true);
  window.hide = () => setShown(false);
  return shown ? <Viewer /> : <span id="gone">gone</span>;
}
// StrictMode at the root: React 19 double-invokes the effects of a first mount only there.
createRoot(document.getElementById('root')).render(
  <StrictMode>
    <App />
  </StrictMode>,
);
`,
  );
  mkdirSync(join(dir, 'dist'));
  await build({
    entryPoints: [join(dir, 'app.jsx')],
    bundle: true,
    format: 'esm',
    jsx: 'automatic',
    outfile: join(dir, 'dist', 'app.js'),
    nodePaths: [join(ROOT, 'node_modules')],
    define: { 'process.env.NODE_ENV': '"development"' },
    logLevel: 'warning',
  });
  // init() loads the .wasm next to the JS that asks for it: here, the bundle.
  copyFileSync(join(NPM, 'pkg', 'fhircast_sdk_bg.wasm'), join(dir, 'dist', 'fhircast_sdk_bg.wasm'));
  writeFileSync(join(dir, 'dist', 'index.html'), '<!doctype html><meta charset="utf-8"><div id="root"></div><script type="module" src="./app.js"></script>');
  site = await serveStatic({ '/': join(dir, 'dist') });
});
after(async () => {
  await site?.close();
  await env?.teardown();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const roster = async (topic) => (await env.hub.request(`/${topic}/subscribers`)).json.subscribers;

test('react: useFhircast under StrictMode makes one subscription, re-renders context and status, answers with the latest handler, unsubscribes on unmount', async () => {
  const topic = (env.hub.topic = uid('react'));
  const context = await env.browser.newContext();
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e));
  const subscribes = [];
  page.on('request', (r) => r.method() === 'POST' && /hub\.mode=subscribe/.test(r.postData() ?? '') && subscribes.push(r.url()));
  await page.goto(`${site.origin}/index.html?${new URLSearchParams({ hub: env.hub.base, topic })}`);
  await page.waitForFunction(() => document.getElementById('status')?.textContent === 'in-sync', null, { timeout: 10000 });
  assert.equal(subscribes.length, 1, 'StrictMode mounted twice; one subscribe');
  assert.deepEqual((await roster(topic)).map((s) => [s.name, s.connected]), [['React viewer', true]]);

  await env.hub.post(env.hub.event('Patient-open', [patient('p1')]));
  await page.waitForFunction(() => document.getElementById('patient').textContent === 'Patient/p1', null, { timeout: 5000 });

  // The handler of the latest render answers: now it refuses.
  await page.evaluate(() => window.setRefusing(true));
  await env.hub.post(env.hub.event('Patient-open', [patient('p2')]));
  await page.waitForFunction(() => document.getElementById('status').textContent === 'out-of-sync', null, { timeout: 5000 });
  assert.equal(await page.textContent('#patient'), 'Patient/p1', 'refused: still shows p1, and says it is out of sync');

  await page.evaluate(() => window.hide());
  await eventually(async () => (await roster(topic)).length === 0, { message: 'unsubscribed on unmount' });
  assert.deepEqual(errors, []);
  await context.close();
});
