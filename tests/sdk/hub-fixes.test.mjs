// What the SDK needs of the hub, checked from Node as a browser would send it (two hub bugs
// the SDK's first browser runs hit, fixed in edge-hub on main too):
// - CORS (§5a-24): responses relayed from the Durable Object had immutable headers, so adding
//   CORS headers failed and every cross-origin subscribe, event and GET got a 500;
// - req 49: the hub never answered a client's close frame, so a subscriber closing with 1000
//   hung in CLOSING until its own timeout.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startHub, form, patient, uid } from './harness.mjs';

let hub;
before(async () => (hub = await startHub()));
after(async () => hub?.stop());

const ORIGIN = 'http://127.0.0.1:1234';

test('impl 5a-24: subscribe, event and current-context answers relayed from the topic carry CORS headers', async () => {
  const topic = uid('topic');
  const sub = await fetch(hub.base, {
    method: 'POST',
    headers: { origin: ORIGIN, 'content-type': 'application/x-www-form-urlencoded' },
    body: form({ 'hub.channel.type': 'websocket', 'hub.mode': 'subscribe', 'hub.topic': topic, 'hub.events': 'Patient-open' }),
  });
  assert.equal(sub.status, 202, await sub.text());
  assert.equal(sub.headers.get('access-control-allow-origin'), ORIGIN);
  assert.equal(sub.headers.get('content-type')?.startsWith('application/json'), true, 'the original headers are kept');
  const ev = await fetch(hub.base, {
    method: 'POST',
    headers: { origin: ORIGIN, 'content-type': 'application/json' },
    body: JSON.stringify(hub.event('Patient-open', [patient('p1')], { topic })),
  });
  assert.equal(ev.status, 202, await ev.text());
  assert.equal(ev.headers.get('access-control-allow-origin'), ORIGIN);
  const get = await fetch(`${hub.base}/${topic}`, { headers: { origin: ORIGIN } });
  assert.equal(get.status, 200);
  assert.equal(get.headers.get('access-control-allow-origin'), ORIGIN);
  assert.equal((await get.json())['context.type'], 'Patient');
});

test('req49: a subscriber that closes with 1000 gets the closing handshake answered at once', async () => {
  const topic = uid('topic');
  const observer = await hub.join('Patient-open,SyncError', { topic, name: 'Observer' });
  const s = await hub.join('Patient-open', { topic, name: 'Leaving' });
  const t0 = Date.now();
  const closed = await s.close(1000, 'bye');
  assert.ok(Date.now() - t0 < 2000, `the hub answered the close frame (took ${Date.now() - t0} ms)`);
  assert.equal(closed.code, 1000);
  assert.ok(await observer.nothing((m) => m.event?.['hub.event'] === 'SyncError', 500), 'a normal close raises no SyncError');
  await observer.close();
});
