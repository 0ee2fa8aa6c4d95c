// The hub seen from a browser origin: CORS on every route (§5a-24). Found by the SDK's
// browser tests: responses relayed from the Durable Object had immutable headers, so adding
// CORS headers failed and every cross-origin subscribe, event and GET got a 500.
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
