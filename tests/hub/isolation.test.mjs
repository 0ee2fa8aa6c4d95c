// Topics are isolated from each other (one Durable Object per topic).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startHub, Subscriber, patient, report, reportRef, study, bundle, observationPut, uid } from './harness.mjs';
import { upgradeRefusal, sleep } from './wsutil.mjs';

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

test('req10 req45 req88 req97 (isolation, 50 topics): under concurrent traffic every event received belongs to the receiver\'s topic and to its granted events, and none is missed', async () => {
  const N = 50;
  // Three subscribers per topic with different grants; every resource id carries its topic's
  // index, so a delivery from another topic shows even if its hub.topic were rewritten.
  const grants = ['Patient-open,Patient-close', 'DiagnosticReport-open,DiagnosticReport-update,DiagnosticReport-close,SyncError', 'Patient-open,ImagingStudy-open'];
  const topics = Array.from({ length: N }, (_, i) => ({ i, topic: uid(`iso${i}`) }));
  for (const t of topics) {
    t.subs = await Promise.all(grants.map((events, k) => hub.join(events, { topic: t.topic, name: `t${t.i}-s${k}` })));
  }
  const tag = (i, id) => `t${i}-${id}`;
  const run = async ({ i, topic }) => {
    const posted = [];
    const post = async (name, context, extra = {}) => {
      const ev = hub.event(name, context, { topic, ...extra });
      const r = await hub.post(ev);
      assert.equal(r.status, 202, r.text);
      posted.push(ev);
      return r.json;
    };
    const p = (n) => patient(tag(i, `p${n}`));
    await post('Patient-open', [p(1)]);
    const v = (await post('DiagnosticReport-open', [report(tag(i, 'r1')), p(2), study(tag(i, 's1'))]))['context.versionId'];
    await post('DiagnosticReport-update', [reportRef(tag(i, 'r1')), bundle([observationPut(tag(i, 'o1'))])], { versionId: v });
    await post('Patient-open', [p(3)]);
    await post('Patient-close', [p(3)]);
    await post('DiagnosticReport-close', [report(tag(i, 'r1')), p(2)]);
    return posted;
  };
  const posted = await Promise.all(topics.map(run));
  // Every requested event reaches every subscriber granted it, in the order accepted.
  for (const t of topics) {
    for (const [k, s] of t.subs.entries()) {
      const granted = new Set(grants[k].toLowerCase().split(','));
      const expected = posted[t.i].filter((e) => granted.has(e.event['hub.event'].toLowerCase())).map((e) => e.id);
      const until = Date.now() + 30_000;
      const got = () => s.all.filter((m) => m.event && expected.includes(m.id)).map((m) => m.id);
      while (got().length < expected.length && Date.now() < until) await sleep(20);
      assert.deepEqual(got(), expected, `topic ${t.i} subscriber ${k}: every granted event, in order`);
    }
  }
  await sleep(300); // let stray deliveries, if any, arrive
  let deliveries = 0;
  let crossTopic = 0;
  let ungranted = 0;
  for (const t of topics) {
    for (const [k, s] of t.subs.entries()) {
      const granted = new Set(s.confirmation['hub.events'].toLowerCase().split(','));
      for (const m of s.all.filter((x) => x.event)) {
        deliveries++;
        const ids = JSON.stringify(m.event.context).match(/"(?:id|reference)":"(?:[A-Za-z]+\/)?(t\d+)-/g) ?? [];
        const foreign = m.event['hub.topic'] !== t.topic || ids.some((x) => !x.includes(`"t${t.i}-`) && !x.includes(`/t${t.i}-`));
        if (foreign) crossTopic++;
        if (!granted.has(m.event['hub.event'].toLowerCase())) ungranted++;
        assert.ok(!foreign, `topic ${t.i} subscriber ${k} got ${JSON.stringify(m).slice(0, 300)}`);
        assert.ok(granted.has(m.event['hub.event'].toLowerCase()), `req 45: ${m.event['hub.event']} not granted to topic ${t.i} subscriber ${k}`);
        assert.ok(ids.length > 0 || m.event['hub.event'] === 'SyncError', 'every delivery carries its topic mark');
      }
    }
  }
  console.log(`isolation: ${N} topics, ${N * grants.length} subscribers, ${posted.flat().length} events posted concurrently, ${deliveries} deliveries; cross-topic ${crossTopic}, not granted ${ungranted}`);
  assert.ok(deliveries >= N * 10, `${deliveries} deliveries`);
  for (const t of topics) for (const s of t.subs) s.ws.close();
});
