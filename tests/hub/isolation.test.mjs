// Topics are isolated from each other (one Durable Object per topic).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startHub, Subscriber, patient, uid } from './harness.mjs';
import { upgradeRefusal } from './wsutil.mjs';

let hub;
before(async () => (hub = await startHub()));
after(async () => hub?.stop());

test('req10 req45 req80 (isolation): subscribers of one topic never receive another topic\'s events, under concurrent posts', async () => {
  const topics = [uid(), uid(), uid(), uid()];
  const subs = await Promise.all(topics.flatMap((topic) => [hub.join('Patient-open,Patient-close,SyncError', { topic, name: `${topic}-a` }), hub.join('Patient-open', { topic, name: `${topic}-b` })]));
  const sharedId = uid('same-id-in-every-topic');
  const sent = await Promise.all(
    topics.map(async (topic) => {
      const ids = [];
      for (const pid of ['p1', 'p2', 'p3', 'p4']) {
        const ev = hub.event('Patient-open', [patient(`${pid}`, { name: [{ family: topic }] })], { topic });
        const r = await hub.post(ev);
        assert.equal(r.status, 202, r.text);
        ids.push(ev.id);
      }
      const last = hub.event('Patient-open', [patient('p5', { name: [{ family: topic }] })], { topic, id: sharedId });
      assert.equal((await hub.post(last)).status, 202, 'ids are per topic');
      ids.push(sharedId);
      return ids;
    }),
  );
  for (const [i, topic] of topics.entries()) {
    for (const s of [subs[2 * i], subs[2 * i + 1]]) {
      const got = [];
      for (let k = 0; k < 5; k++) got.push(await s.nextEvent('Patient-open'));
      assert.deepEqual(got.map((m) => m.id), sent[i]);
      assert.ok(got.every((m) => m.event['hub.topic'] === topic && m.event.context[0].resource.name[0].family === topic));
    }
  }
  for (const s of subs) assert.ok(await s.nothing(undefined, 100), 'nothing from the other topics');
  for (const topic of topics) {
    const cur = (await hub.getContext(topic)).json;
    assert.equal(cur.context[0].resource.name[0].family, topic, 'each topic has its own current context');
  }
  for (const s of subs) await s.close();
});

test('neg13 neg4 (isolation): an event posted to /api/hub/{topicA} whose body names topic B is refused (403) and delivered nowhere', async () => {
  const [topicA, topicB] = [uid(), uid()];
  const a = await hub.join('Patient-open', { topic: topicA });
  const b = await hub.join('Patient-open', { topic: topicB });
  const ev = hub.event('Patient-open', [patient('p1')], { topic: topicB });
  const r = await hub.post(ev, { path: `/${encodeURIComponent(topicA)}` });
  assert.equal(r.status, 403, r.text);
  assert.equal(r.json.resourceType, 'OperationOutcome');
  assert.ok(await a.nothing());
  assert.ok(await b.nothing(undefined, 100));
  for (const t of [topicA, topicB]) assert.deepEqual((await hub.getContext(t)).json, { 'context.type': '', context: [] });
  // The same body posted to its own topic's path is accepted, and reaches topic B only.
  assert.equal((await hub.post(ev, { path: `/${encodeURIComponent(topicB)}` })).status, 202);
  assert.equal((await b.nextEvent('Patient-open')).id, ev.id);
  assert.ok(await a.nothing(undefined, 300));
  await a.close();
  await b.close();
});

test('neg11 neg10 (isolation): topic A\'s WebSocket endpoint is refused under topic B\'s path, and is unknown to topic B\'s (un)subscribe', async () => {
  const [topicA, topicB] = [uid(), uid()];
  const b = await hub.join('Patient-open', { topic: topicB }); // topic B exists
  const r = await hub.subscribe({ topic: topicA, events: 'Patient-open' });
  const endpoint = r.json['hub.channel.endpoint'];
  const crossed = endpoint.replace(`/ws/${topicA}/`, `/ws/${topicB}/`);
  assert.notEqual(crossed, endpoint);
  assert.equal((await upgradeRefusal(crossed)).status, 404);
  assert.equal((await hub.subscribe({ topic: topicB, events: 'Patient-open', endpoint })).status, 404);
  assert.equal((await hub.unsubscribe(endpoint, { topic: topicB })).status, 404);
  // The endpoint was not consumed: it still works under its own topic.
  const s = await Subscriber.connect(endpoint);
  const confirmation = await s.next();
  assert.equal(confirmation['hub.topic'], topicA);
  await s.close();
  await b.close();
});
