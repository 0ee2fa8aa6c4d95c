// Durability: the workerd process is stopped and started again on the same persisted state.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startHub, patient, encounter, report, reportRef, bundle, observationPut, uid } from './harness.mjs';
import { upgradeRefusal } from './wsutil.mjs';

let hub;
before(async () => (hub = await startHub()));
after(async () => hub?.stop());

const within = (p, ms, what) => Promise.race([p, new Promise((_, reject) => setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms))]);

async function post(ev) {
  const r = await hub.post(ev);
  assert.equal(r.status, 202, `${ev.event['hub.event']}: ${r.text}`);
  return r.json;
}

test('req108 req125 req44 req106 (restart): after a restart the current context, open contexts, versions and content are unchanged; re-subscribers get the replay', async () => {
  const topic = uid();
  const events = 'Patient-open,DiagnosticReport-open,DiagnosticReport-update,DiagnosticReport-close';
  const a = await hub.join(events, { topic, name: 'A' });
  const b = await hub.join('Patient-open,Patient-close', { topic, name: 'B' });
  const r1 = hub.event('DiagnosticReport-open', [report('r1'), patient('p1')], { topic });
  const v1 = (await post(r1))['context.versionId'];
  const v2 = (await post(hub.event('DiagnosticReport-update', [reportRef('r1'), bundle([observationPut('obs1')])], { topic, versionId: v1 })))['context.versionId'];
  const r2 = hub.event('DiagnosticReport-open', [report('r2'), patient('p2')], { topic });
  const w1 = (await post(r2))['context.versionId'];
  const w2 = (await post(hub.event('DiagnosticReport-update', [reportRef('r2'), bundle([observationPut('obs2'), observationPut('obs3')], 'b2')], { topic, versionId: w1 })))['context.versionId'];
  await b.nextEvent('Patient-open');
  const derivedP2 = await b.nextEvent('Patient-open');
  assert.deepEqual(derivedP2.event.context, [patient('p2')]);
  const before = (await hub.getContext(topic)).json;
  assert.equal(before['context.versionId'], w2);
  assert.equal(before.context.at(-1).resource.entry.length, 2);

  await hub.restart();
  await within(a.closed, 5000, 'A sees its socket drop');
  await within(b.closed, 5000, 'B sees its socket drop');

  assert.deepEqual((await hub.getContext(topic)).json, before, 'same current context, version and content');
  assert.equal((await upgradeRefusal(a.endpoint)).status, 404, 'neg 23: a socket lost in the restart ends its subscription');

  const a2 = await hub.join(events, { topic, name: 'A2' });
  // A2 subscribes to DiagnosticReport-open, the source of the derived Patient-open: like a live
  // broadcast (req 98: no duplicates), the replay gives it r2, whose context carries p2.
  const replay = [await a2.next()];
  assert.deepEqual(replay.map((m) => m.id), [r2.id], 'r2, not the Patient-open derived from it');
  assert.equal(replay[0].timestamp, r2.timestamp);
  assert.deepEqual(replay[0].event, { 'hub.topic': topic, 'hub.event': 'DiagnosticReport-open', 'context.versionId': w2, context: r2.event.context });
  assert.ok(await a2.nothing(undefined, 300));
  const b2 = await hub.join('Patient-open,Patient-close', { topic, name: 'B2' });
  assert.deepEqual(await b2.next(), derivedP2, 'the derived open is replayed exactly as it was sent');

  // The non-current anchor r1 kept its version and content.
  const up = hub.event('DiagnosticReport-update', [reportRef('r1'), bundle([observationPut('obs4')])], { topic, versionId: v2 });
  await post(up);
  assert.equal((await a2.nextEvent('DiagnosticReport-update')).event['context.priorVersionId'], v2);
  const stale = await hub.post(hub.event('DiagnosticReport-update', [reportRef('r2'), bundle([observationPut('obs9')])], { topic, versionId: w1 }));
  assert.equal(stale.status, 409);
  const reopened = await post(hub.event('DiagnosticReport-open', [report('r1'), patient('p1')], { topic }));
  assert.notEqual(reopened['context.versionId'], v2);
  const cur = (await hub.getContext(topic)).json;
  assert.deepEqual(cur.context.at(-1).resource.entry.map((e) => e.resource.id), ['obs1', 'obs4']);
  // B2 follows the current report's patient (views, ARCHITECTURE.md): p1 now.
  assert.deepEqual((await b2.nextEvent('Patient-open')).event.context, [patient('p1')]);
  // Closing r2 (not current) changes nothing B2 shows; closing r1, the current context, sends
  // B2 the close of p1.
  await post(hub.event('DiagnosticReport-close', [report('r2'), patient('p2')], { topic }));
  assert.ok(await b2.nothing(undefined, 300));
  await post(hub.event('DiagnosticReport-close', [report('r1'), patient('p1')], { topic }));
  assert.deepEqual((await b2.nextEvent('Patient-close')).event.context, [patient('p1')]);
  await a2.close();
  await b2.close();
});

test('req108 req123 req139 (kill): every event the hub answered 2xx before a kill() is in its state after start()', async () => {
  const topics = [uid(), uid(), uid()];
  const answers = await Promise.all(
    topics.map(async (topic) => {
      const sent = [];
      const send = async (ev) => (sent.push(ev), post(ev));
      for (const pid of ['p1', 'p2', 'p3']) await send(hub.event('Patient-open', [patient(pid)], { topic }));
      await send(hub.event('Encounter-open', [encounter('e1', 'p3'), patient('p3')], { topic }));
      const v = (await send(hub.event('DiagnosticReport-open', [report('r1'), patient('p3')], { topic })))['context.versionId'];
      const last = await send(hub.event('DiagnosticReport-update', [reportRef('r1'), bundle([observationPut(`obs-${topic}`)])], { topic, versionId: v }));
      return { topic, sent, version: last['context.versionId'] };
    }),
  );
  await hub.kill();
  await hub.start();
  for (const { topic, sent, version } of answers) {
    const cur = (await hub.getContext(topic)).json;
    assert.equal(cur['context.type'], 'DiagnosticReport');
    assert.equal(cur['context.versionId'], version, 'the last update is there');
    assert.deepEqual(cur.context.at(-1).resource.entry.map((e) => e.resource.id), [`obs-${topic}`]);
    // Every accepted request id is remembered: resending one is a duplicate, not a new event.
    for (const ev of sent) {
      const again = await hub.post(ev);
      assert.equal(again.status, 202, again.text);
      assert.equal(again.json.duplicate, true, `${ev.event['hub.event']} ${ev.id} is remembered`);
    }
    // Every context opened is still open.
    await post(hub.event('DiagnosticReport-close', [report('r1'), patient('p3')], { topic }));
    await post(hub.event('Encounter-close', [encounter('e1', 'p3'), patient('p3')], { topic }));
    for (const pid of ['p1', 'p2', 'p3']) await post(hub.event('Patient-close', [patient(pid)], { topic }));
    assert.deepEqual((await hub.getContext(topic)).json, { 'context.type': '', context: [] });
  }
});
