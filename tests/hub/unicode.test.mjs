// A user, a client and a topic named outside ASCII (a Japanese user id, a French topic): every
// request works, and the timeline names them as they are. The Worker passes the verified
// authorization and the topic to the topic's object in headers (contract.rs) for every request
// but events (RPC); browsers refuse header values beyond U+00FF, workerd passes them through as
// UTF-8, and this test would catch the day it does not.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startHub, patient } from './harness.mjs';
import { jwt, JWT_BINDINGS } from './tokens.mjs';

const hubs = [];
after(async () => Promise.all(hubs.map((h) => h.stop())));

test('neg9 req24 req78: a token whose sub and client_id are not ASCII, on a topic that is not ASCII: subscribe, follow, publish, context, roster and timeline all work and name them as they are', async () => {
  const hub = await startHub({ bindings: JWT_BINDINGS });
  hubs.push(hub);
  const topic = `café-été-${Date.now()}`;
  const sub = '山田 太郎 😀';
  const token = jwt({ sub, client_id: 'クライアント', 'hub.topic': topic });
  const viewer = await hub.join('Patient-open', { name: 'Visionneuse', topic, token });
  const posted = await hub.post(hub.event('Patient-open', [patient('p-1')], { topic }), { token });
  assert.equal(posted.status, 202, posted.text);
  assert.equal((await viewer.nextEvent('Patient-open')).event['hub.topic'], topic);
  const ctx = await hub.getContext(topic, { token });
  assert.equal(ctx.status, 200, ctx.text);
  assert.equal(ctx.json.context.find((c) => c.key === 'patient').resource.id, 'p-1');
  const headers = { authorization: `Bearer ${token}` };
  const roster = await hub.request(`/${encodeURIComponent(topic)}/subscribers`, { headers });
  assert.equal(roster.status, 200, roster.text);
  assert.deepEqual(roster.json.subscribers.map((s) => s.name), ['Visionneuse']);
  const timeline = await hub.request(`/${encodeURIComponent(topic)}/timeline`, { headers });
  assert.equal(timeline.status, 200, timeline.text);
  assert.equal(timeline.json['hub.topic'], topic);
  const event = timeline.json.facts.find((f) => f.fact === 'event');
  assert.deepEqual(event.by, { subject: sub, client: 'クライアント' });
  const unsubscribed = await hub.unsubscribe(viewer.endpoint, { topic, token });
  assert.equal(unsubscribed.status, 202, unsubscribed.text);
});
