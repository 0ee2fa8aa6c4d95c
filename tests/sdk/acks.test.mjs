// Answers to notifications (SUB items 70-75, 94): the handler's result decides the status the
// SDK sends on the WebSocket; 202 followed by a refusal becomes a SyncError POSTed to the hub.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setup, patient, uid, syncErrorDetails, eventually } from './harness.mjs';

let env;
before(async () => (env = await setup()));
after(async () => env?.teardown());

/** A fresh topic with an observer (a raw WebSocket subscriber) and the SDK app using `handlers`. */
async function scenario(handlers) {
  env.hub.topic = uid('topic');
  const observer = await env.hub.join('Patient-open,SyncError', { name: 'Observer' });
  const app = await env.app();
  await app.connect({ events: ['Patient-open'], subscriberName: 'Viewer' }, handlers);
  await app.until(() => client.status().state === 'in-sync');
  return { app, observer };
}

async function open(id, pid = 'p1') {
  const r = await env.hub.post(env.hub.event('Patient-open', [patient(pid)], { id }));
  assert.equal(r.status, 202, r.text);
}

const ackOf = (app, id) => app.acks().filter((a) => a.id === id);

test('req70 req71: a handler that returns nothing is followed: 200, the context changes, no SyncError', async () => {
  const { app, observer } = await scenario(`{ 'Patient-open': (e) => { log.events.push(e.id); } }`);
  await open('e-accept');
  await eventually(() => ackOf(app, 'e-accept').length, { message: 'the ack' });
  assert.deepEqual(ackOf(app, 'e-accept'), [{ id: 'e-accept', status: 200 }]);
  assert.equal((await app.eval(() => client.currentContext())).anchor, 'Patient/p1');
  await app.until(() => log.contexts.some((c) => c?.anchor === 'Patient/p1'));
  assert.ok(await observer.nothing((m) => m.event?.['hub.event'] === 'SyncError', 700));
  await app.eval(() => client.close());
  await observer.close();
});

test('req71 req84: refusing (false or "refuse") answers 409; the hub tells the others with a SyncError', async () => {
  const { app, observer } = await scenario(`{ 'Patient-open': (e) => (e.id === 'e-false' ? false : 'refuse') }`);
  await open('e-false');
  await open('e-refuse', 'p2');
  await eventually(() => ackOf(app, 'e-refuse').length, { message: 'the acks' });
  assert.deepEqual(ackOf(app, 'e-false'), [{ id: 'e-false', status: 409 }]);
  assert.deepEqual(ackOf(app, 'e-refuse'), [{ id: 'e-refuse', status: 409 }]);
  const se = syncErrorDetails(await observer.nextEvent('SyncError'));
  assert.equal(se.subscriber, 'Viewer');
  assert.equal(se.eventName, 'Patient-open');
  assert.equal(await app.eval(() => client.currentContext()), null, 'a refused context is not shown');
  const status = await app.eval(() => client.status());
  assert.equal(status.state, 'out-of-sync');
  assert.equal(status.reason.kind, 'refused');
  await app.eval(() => client.close());
  await observer.close();
});

test('req71: a handler that throws (or returns "fail") answers 500', async () => {
  const { app, observer } = await scenario(`{ 'Patient-open': () => { throw new Error('viewer crashed'); } }`);
  await open('e-throw');
  await eventually(() => ackOf(app, 'e-throw').length, { message: 'the ack' });
  assert.deepEqual(ackOf(app, 'e-throw'), [{ id: 'e-throw', status: 500 }]);
  const se = syncErrorDetails(await observer.nextEvent('SyncError'));
  assert.equal(se.subscriber, 'Viewer');
  await app.eval(() => client.close());
  await observer.close();
});

test('req75 req94: "defer" answers 202; refusing later POSTs a SyncError (severity warning) naming this app', async () => {
  const { app, observer } = await scenario(`{ 'Patient-open': (e) => { log.events.push(e.id); return 'defer'; } }`);
  await open('e-defer');
  await eventually(() => ackOf(app, 'e-defer').length, { message: 'the 202' });
  assert.deepEqual(ackOf(app, 'e-defer'), [{ id: 'e-defer', status: 202 }]);
  const deciding = await app.eval(() => client.status());
  assert.equal(deciding.state, 'out-of-sync');
  assert.equal(deciding.reason.kind, 'deciding');
  await app.eval(() => client.decide('e-defer', 'refuse'));
  const msg = await observer.nextEvent('SyncError');
  const se = syncErrorDetails(msg);
  assert.equal(se.severity, 'warning', 'req 94');
  assert.equal(se.eventId, 'e-defer');
  assert.equal(se.subscriber, 'Viewer');
  const post = app.requests.find((r) => r.method === 'POST' && r.body?.includes('"SyncError"'));
  assert.ok(post, 'the SDK POSTed the SyncError to the hub');
  assert.equal(post.headers['content-type'], 'application/json');
  assert.deepEqual(ackOf(app, 'e-defer'), [{ id: 'e-defer', status: 202 }], 'no second answer on the socket');
  await app.eval(() => client.close());
  await observer.close();
});

test('req75: a promise is awaited; accepting after 1 s answers 200', async () => {
  const { app, observer } = await scenario(`{ 'Patient-open': () => new Promise((r) => setTimeout(() => r('accept'), 1000)) }`);
  const t0 = Date.now();
  await open('e-later');
  await eventually(() => ackOf(app, 'e-later').length, { message: 'the ack', timeout: 4000 });
  assert.ok(Date.now() - t0 >= 900, 'answered when the promise settled');
  assert.deepEqual(ackOf(app, 'e-later'), [{ id: 'e-later', status: 200 }]);
  assert.equal((await app.eval(() => client.currentContext())).anchor, 'Patient/p1');
  await app.eval(() => client.close());
  await observer.close();
});

test('req75 req94: a promise that never settles is answered 202 in time, then refused with a SyncError within 10 s', async () => {
  const { app, observer } = await scenario(`{ 'Patient-open': () => new Promise(() => {}) }`);
  const t0 = Date.now();
  await open('e-never');
  await eventually(() => ackOf(app, 'e-never').length, { message: 'the 202', timeout: 8000 });
  const t202 = Date.now() - t0;
  assert.deepEqual(ackOf(app, 'e-never'), [{ id: 'e-never', status: 202 }]);
  assert.ok(t202 >= 2500 && t202 < 9000, `202 after the follower waited 3 s, before the hub's 10 s timeout (after ${t202} ms)`);
  const se = syncErrorDetails(await observer.nextEvent('SyncError', 9000));
  const tSe = Date.now() - t0;
  assert.equal(se.eventId, 'e-never');
  assert.equal(se.subscriber, 'Viewer');
  assert.ok(tSe >= 9000 && tSe < 12500, `the SyncError came ~10 s after receipt (${tSe} ms)`);
  await app.eval(() => client.close());
  await observer.close();
});

test('an event with no handler is accepted (200)', async () => {
  const { app, observer } = await scenario(`{}`);
  await open('e-nohandler');
  await eventually(() => ackOf(app, 'e-nohandler').length, { message: 'the ack' });
  assert.deepEqual(ackOf(app, 'e-nohandler'), [{ id: 'e-nohandler', status: 200 }]);
  await app.until(() => client.currentContext()?.anchor === 'Patient/p1');
  await app.eval(() => client.close());
  await observer.close();
});
