// The roster, GET {hub}/{topic}/subscribers: this hub's read-only extension for EHR dashboards
// (who subscribed, whether connected, what is awaited, the last answer). No endpoint URLs in it
// (req 22: they are the subscribers' credential on the socket). Auth: tests/hub/auth.test.mjs.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startHub, patient, uid } from './harness.mjs';

let hub;
before(async () => (hub = await startHub()));
after(async () => hub?.stop());

const roster = async (topic = hub.topic) => {
  const r = await hub.request(`/${encodeURIComponent(topic)}/subscribers`);
  assert.equal(r.status, 200, r.text);
  assert.match(r.headers.get('content-type'), /^application\/json/);
  return r.json;
};

test('roster: names, events, connection, awaited notifications and last answers; never an endpoint', async () => {
  hub.topic = uid('topic');
  const ehr = await hub.join('Patient-open,SyncError', { name: 'EHR' });
  const refusing = await hub.join('Patient-open', { name: 'Viewer', ack: 409 });
  const deciding = await hub.join('Patient-open', { name: 'Report', ack: 202 });
  const silent = await hub.join('Patient-open', { name: 'Silent', ack: false });
  const issued = await hub.subscribe({ events: 'Patient-open', name: 'Not connected yet' });
  assert.equal(issued.status, 202);

  const before = await roster();
  assert.equal(before['hub.topic'], hub.topic);
  assert.deepEqual(
    before.subscribers.map((s) => [s.name, s.events, s.connected]),
    [
      ['EHR', ['Patient-open', 'SyncError'], true],
      ['Viewer', ['Patient-open'], true],
      ['Report', ['Patient-open'], true],
      ['Silent', ['Patient-open'], true],
      ['Not connected yet', ['Patient-open'], false],
    ],
  );
  assert.ok(before.subscribers.every((s) => s.awaiting.length === 0 && !('lastAnswer' in s)));

  const r = await hub.post(hub.event('Patient-open', [patient('p1')], { id: 'open-1' }));
  assert.equal(r.status, 202, r.text);
  await ehr.nextEvent('SyncError'); // the viewer's 409 has been handled
  await deciding.nextEvent('Patient-open');
  await silent.nextEvent('Patient-open');
  const after = await roster();
  const by = Object.fromEntries(after.subscribers.map((s) => [s.name, s]));
  assert.deepEqual(by.Viewer.lastAnswer, { id: 'open-1', event: 'Patient-open', status: 409 });
  assert.deepEqual(by.Viewer.awaiting, []);
  assert.equal(by.EHR.lastAnswer.status, 200);
  // The Report app's 202 may still be on its way when the SyncError arrived: poll briefly.
  let report;
  for (let i = 0; i < 50 && !(report = (await roster()).subscribers.find((s) => s.name === 'Report')).lastAnswer; i++) {
    await new Promise((res) => setTimeout(res, 20));
  }
  assert.deepEqual(report.lastAnswer, { id: 'open-1', event: 'Patient-open', status: 202 });
  assert.deepEqual(report.awaiting, []);
  assert.deepEqual(by.Silent.awaiting, [{ id: 'open-1', event: 'Patient-open' }]);
  assert.equal(by.Silent.lastAnswer, undefined);

  const text = JSON.stringify(after);
  for (const s of [ehr, refusing, deciding, silent]) assert.ok(!text.includes(s.endpoint.split('/').pop()), 'no endpoint token');
  assert.ok(!text.includes(issued.json['hub.channel.endpoint'].split('/').pop()), 'no endpoint token');

  // An unsubscribed app leaves the roster.
  assert.equal((await hub.unsubscribe(refusing.endpoint)).status, 202);
  await refusing.closed;
  assert.ok(!(await roster()).subscribers.some((s) => s.name === 'Viewer'));
});

test('roster: an unused topic has an empty one; bad topics are 404, other methods 405', async () => {
  const topic = uid('unused');
  assert.deepEqual(await roster(topic), { 'hub.topic': topic, subscribers: [] });
  assert.equal((await hub.request('/a%20b/subscribers')).status, 404);
  const post = await hub.request(`/${topic}/subscribers`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
  assert.equal(post.status, 405);
  assert.equal(post.headers.get('allow'), 'GET, OPTIONS');
});
