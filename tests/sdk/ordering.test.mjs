// What a subscriber must ignore or notice (SUB items 48, 67, 70, 110, neg 24), driven by a
// scripted hub: stale events, duplicates, version gaps, unreadable messages and a denial.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setup, sleep } from './harness.mjs';
import { startFakeHub } from './fakehub.mjs';

let env;
before(async () => (env = await setup()));
after(async () => env?.teardown());

const iso = (msAgo = 0) => new Date(Date.now() - msAgo).toISOString();
const open = (id, pid, timestamp) => ({
  timestamp,
  id,
  event: { 'hub.topic': 'T', 'hub.event': 'Patient-open', context: [{ key: 'patient', resource: { resourceType: 'Patient', id: pid } }] },
});

async function connected(fake) {
  const app = await env.app();
  await app.connect({ hubUrl: fake.base, topic: 'T', events: ['Patient-open', 'Patient-close', 'DiagnosticReport-open', 'DiagnosticReport-update'] }, `{ '*': (e) => { log.events.push(e.id); } }`);
  await app.until(() => client.status().state === 'in-sync');
  return { app, sock: await fake.socket() };
}

test('req67: an event older than the current context is ignored (200, not delivered); a duplicate is answered again, not delivered twice', async () => {
  const fake = await startFakeHub();
  const { app, sock } = await connected(fake);
  sock.send(open('e2', 'p2', iso(1000)));
  assert.deepEqual(await sock.ack('e2'), { id: 'e2', status: 200 });
  sock.send(open('e1-stale', 'p1', iso(60_000)));
  assert.deepEqual(await sock.ack('e1-stale'), { id: 'e1-stale', status: 200 });
  sock.send({ ...open('e3-stale-close', 'p2', iso(30_000)), event: { ...open('x', 'p2').event, 'hub.event': 'Patient-close' } });
  assert.deepEqual(await sock.ack('e3-stale-close'), { id: 'e3-stale-close', status: 200 });
  sock.send(open('e2', 'p2', iso(1000)));
  assert.deepEqual(await sock.ack('e2', { skip: 1 }), { id: 'e2', status: 200 }, 'the duplicate is answered as before');
  assert.deepEqual((await app.log()).events, ['e2'], 'delivered once; stale events never');
  assert.equal((await app.eval(() => client.currentContext())).anchor, 'Patient/p2');
  assert.equal(await app.eval(() => client.status().state), 'in-sync');
  await app.eval(() => client.close());
  await fake.close();
});

test('req110: an update whose priorVersionId is not the known version is a gap: 202, out of sync, the current context is read again', async () => {
  const fake = await startFakeHub();
  const { app, sock } = await connected(fake);
  sock.send({
    timestamp: iso(),
    id: 'r-open',
    event: {
      'hub.topic': 'T',
      'hub.event': 'DiagnosticReport-open',
      'context.versionId': 'v1',
      context: [
        { key: 'report', resource: { resourceType: 'DiagnosticReport', id: 'r1', status: 'final' } },
        { key: 'patient', resource: { resourceType: 'Patient', id: 'p1' } },
      ],
    },
  });
  assert.equal((await sock.ack('r-open')).status, 200);
  const getsBefore = fake.gets;
  fake.context = {
    'context.type': 'DiagnosticReport',
    'context.versionId': 'v3',
    context: [
      { key: 'report', resource: { resourceType: 'DiagnosticReport', id: 'r1', status: 'final' } },
      { key: 'patient', resource: { resourceType: 'Patient', id: 'p1' } },
    ],
  };
  sock.send({
    timestamp: iso(),
    id: 'u3',
    event: {
      'hub.topic': 'T',
      'hub.event': 'DiagnosticReport-update',
      'context.versionId': 'v3',
      'context.priorVersionId': 'v2',
      context: [
        { key: 'report', reference: { reference: 'DiagnosticReport/r1' } },
        { key: 'updates', resource: { resourceType: 'Bundle', type: 'transaction', entry: [] } },
      ],
    },
  });
  assert.equal((await sock.ack('u3')).status, 202);
  await app.until(() => log.status.some((s) => s.state === 'out-of-sync' && s.reason.kind === 'version-gap'));
  await app.until(() => client.status().state === 'in-sync' && client.currentContext()?.versionId === 'v3');
  assert.ok(fake.gets > getsBefore, 'resynchronised with GET');
  assert.ok(!(await app.log()).events.includes('u3'), 'the gapped update is not handed over');
  await app.eval(() => client.close());
  await fake.close();
});

test('neg24 req70: unreadable messages are ignored; an unreadable notification with an id is answered 400', async () => {
  const fake = await startFakeHub();
  const { app, sock } = await connected(fake);
  sock.send('not json at all');
  sock.send({ hello: 'world' });
  sock.send({ id: 'bad-1', timestamp: 'yesterday', event: { 'hub.topic': 'T', 'hub.event': 'Patient-open', context: [] } });
  assert.equal((await sock.ack('bad-1')).status, 400);
  sock.send(open('good', 'p5', iso()));
  assert.equal((await sock.ack('good')).status, 200);
  assert.equal(await app.eval(() => client.status().state), 'in-sync');
  await app.eval(() => client.close());
  await fake.close();
});

test('req48: a denial on the socket ends the subscription; the SDK subscribes again from scratch and is back in sync', async () => {
  const fake = await startFakeHub();
  const { app, sock } = await connected(fake);
  const subscribes = () => fake.requests.filter((r) => r.method === 'POST' && new URLSearchParams(r.body).get('hub.mode') === 'subscribe');
  assert.equal(subscribes().length, 1);
  sock.send({ 'hub.mode': 'denied', 'hub.topic': 'T', 'hub.events': 'Patient-open', 'hub.reason': 'the session ended' });
  await app.until(() => log.status.some((s) => s.state === 'disconnected' && /the session ended/.test(s.reason.message)));
  // Reconnecting (after the backoff) subscribes afresh: no endpoint, a new socket.
  const again = await fake.socket(1);
  assert.notEqual(again, sock);
  const form = new URLSearchParams(subscribes()[1].body);
  assert.equal(form.get('hub.channel.endpoint'), null, 'a new subscription, not a renewal of the denied one');
  await app.until(() => client.status().state === 'in-sync', undefined, { timeout: 10000 });
  try {
    sock.send(open('after', 'p9', iso()));
  } catch {
    // already closed by the SDK: nothing can be read from it either
  }
  await sleep(200);
  assert.ok(!(await app.log()).events.includes('after'), 'the denied socket is no longer read');
  again.send(open('live', 'p8', iso()));
  assert.equal((await again.ack('live')).status, 200);
  await app.eval(() => client.close());
  await fake.close();
});
