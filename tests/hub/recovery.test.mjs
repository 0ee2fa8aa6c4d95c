// A panic in the Durable Object's Rust code does not poison the isolate (edge-hub/js/entry.js):
// the next input re-instantiates the wasm module, the topic reloads from storage, and every app
// is still subscribed and gets the next event. Runs the test build (`make hub-test-build`:
// Cargo feature test-panic, where a subscriber's message "fhircast-test: panic now" makes the
// object panic while it holds the topic), never shipped.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { startHub, patient, ROOT } from './harness.mjs';

const BUILD = join(ROOT, 'target', 'hub-test-build');
const hubs = [];

/** An EHR (subscribed to `ehrEvents`) and a viewer, both shown patient p-1. */
async function twoAppsFollowing(hub, ehrEvents) {
  const apps = [await hub.join(ehrEvents, { name: 'EHR' }), await hub.join('Patient-open', { name: 'Viewer' })];
  assert.equal((await hub.post(hub.event('Patient-open', [patient('p-1')]))).status, 202);
  for (const app of apps) await app.nextEvent('Patient-open');
  return apps;
}
after(async () => Promise.all(hubs.map((h) => h.stop())));

test('recovery: after a panic in the topic object, the next event is accepted and reaches every app, and the context is intact', async () => {
  const lines = [];
  const capture = (stream, into) => {
    let buf = '';
    stream.on('data', (d) => {
      buf += d;
      const parts = buf.split('\n');
      buf = parts.pop();
      into.push(...parts);
    });
  };
  const hub = await startHub({
    build: BUILD,
    options: {
      handleRuntimeStdio: (out, err) => {
        capture(out, lines);
        capture(err, lines);
      },
    },
  });
  hubs.push(hub);
  const [ehr, viewer] = await twoAppsFollowing(hub, 'Patient-open,SyncError');

  viewer.send('fhircast-test: panic now');
  // The panic is logged by the runtime; wait for it so the next input comes after it.
  const end = Date.now() + 5000;
  while (!lines.some((l) => l.includes('panicking on purpose'))) {
    if (Date.now() > end) assert.fail(`no panic in the log:\n${lines.join('\n')}`);
    await new Promise((r) => setTimeout(r, 20));
  }

  const posted = await hub.post(hub.event('Patient-open', [patient('p-2')]));
  assert.equal(posted.status, 202, posted.text);
  for (const app of [ehr, viewer]) {
    const n = await app.nextEvent('Patient-open');
    assert.equal(n.event.context[0].resource.id, 'p-2');
  }
  assert.ok(lines.some((l) => l.includes('Reinitializing Wasm application')), lines.join('\n'));
  const ctx = await hub.getContext();
  assert.equal(ctx.status, 200, ctx.text);
  assert.equal(ctx.json.context.find((c) => c.key === 'patient').resource.id, 'p-2');
  // Both apps are still subscribed and connected: nobody was dropped by the panic.
  const roster = await hub.request(`/${encodeURIComponent(hub.topic)}/subscribers`);
  assert.equal(roster.status, 200, roster.text);
  assert.deepEqual(roster.json.subscribers.map((s) => s.name).sort(), ['EHR', 'Viewer']);
});

test('recovery: an event whose handling panics is answered (an error, not a hang); the next event is accepted and reaches every app', async () => {
  const hub = await startHub({ build: BUILD });
  hubs.push(hub);
  const [ehr, viewer] = await twoAppsFollowing(hub, 'Patient-open');

  // Here the Worker shares the isolate with the object, so the reset also drops the Worker's
  // own pending request: workerd answers it 500 ("would never generate a response") at once.
  const started = Date.now();
  const panicked = await hub.post(hub.event('Patient-open', [patient('p-x')], { id: 'fhircast-test: panic now' }));
  assert.ok(panicked.status >= 500, `${panicked.status} ${panicked.text}`);
  assert.ok(Date.now() - started < 30000, 'answered, not left to time out');
  // Nothing of the panicking event was applied or sent.
  assert.ok(await ehr.nothing((m) => m.event?.['hub.event'] === 'Patient-open', 300), 'the panicking event reached an app');

  const posted = await hub.post(hub.event('Patient-open', [patient('p-2')]));
  assert.equal(posted.status, 202, posted.text);
  for (const app of [ehr, viewer]) {
    assert.equal((await app.nextEvent('Patient-open')).event.context[0].resource.id, 'p-2');
  }
  assert.equal((await hub.getContext()).json.context[0].resource.id, 'p-2');
});
