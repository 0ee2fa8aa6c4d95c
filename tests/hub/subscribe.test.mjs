// Subscription, confirmation, replay and fan-out against the hub running in workerd.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startHub, patient, uid } from './harness.mjs';

let hub;
before(async () => (hub = await startHub()));
after(async () => hub?.stop());

test('req40 req43: subscribe answers 202 with an endpoint; the socket gets a confirmation', async () => {
  const topic = uid();
  const r = await hub.subscribe({ topic, events: 'patient-open,Patient-close', name: 'EHR', lease: 120 });
  assert.equal(r.status, 202);
  assert.match(r.headers.get('content-type'), /^application\/json/);
  assert.match(r.json['hub.channel.endpoint'], /^ws:\/\/127\.0\.0\.1:\d+\/api\/hub\/ws\//);
  const s = await hub.join('patient-open,Patient-close', { topic, name: 'EHR', lease: 120 });
  assert.deepEqual(s.confirmation, { 'hub.mode': 'subscribe', 'hub.topic': topic, 'hub.events': 'Patient-open,Patient-close', 'hub.lease_seconds': 120 });
  await s.close();
});

test('req41: endpoints are unguessable (>= 128 random bits) and unique', async () => {
  const topic = uid();
  const seen = new Set();
  for (let i = 0; i < 5; i++) {
    const r = await hub.subscribe({ topic, events: 'Patient-open' });
    const token = r.json['hub.channel.endpoint'].split('/').pop();
    assert.match(token, /^[0-9a-f]{32,}$/);
    seen.add(token);
  }
  assert.equal(seen.size, 5);
});

test('req44 req80: replay of the current context, then fan-out with the requester id', async () => {
  const topic = uid();
  const ev = hub.event('Patient-open', [patient('p1')], { topic, id: 'open-1' });
  const posted = await hub.post(ev);
  assert.equal(posted.status, 202, posted.text);
  const a = await hub.join('Patient-open', { topic, name: 'A' });
  const replay = await a.nextEvent('Patient-open');
  assert.equal(replay.id, 'open-1');
  assert.equal(replay.timestamp, ev.timestamp, 'req 44: the original timestamp');
  const b = await hub.join('Patient-open', { topic, name: 'B' });
  await b.nextEvent('Patient-open');
  const c = await hub.join('Patient-close', { topic, name: 'C' });
  await hub.post(hub.event('Patient-open', [patient('p2')], { topic, id: 'open-2' }));
  assert.equal((await a.nextEvent('Patient-open')).id, 'open-2');
  assert.equal((await b.nextEvent('Patient-open')).id, 'open-2');
  assert.ok(await c.nothing(), 'req 45: not to subscribers of other events');
});
