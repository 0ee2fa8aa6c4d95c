// SyncErrors (SUB items 81, 84-96) seen through onSyncError and the status, with the hub's
// ack timeout at 2 s so that a silent app is reported quickly.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setup, patient, uid, eventually } from './harness.mjs';

let env;
before(async () => (env = await setup({ bindings: { ACK_TIMEOUT_SECONDS: '2' } })));
after(async () => env?.teardown());

async function sdkApp() {
  const app = await env.app();
  await app.connect({ events: ['Patient-open', 'SyncError'], subscriberName: 'Viewer' }, `{}`);
  await app.until(() => client.status().state === 'in-sync');
  return app;
}

test('req76 req77 req84 req86 req81: another app refuses this app\'s event: onSyncError (ownEvent), out of sync, resent with a new id and the original timestamp', async () => {
  env.hub.topic = uid('topic');
  const refuser = await env.hub.join('Patient-open', { name: 'Refuser', ack: 409 });
  const app = await sdkApp();
  const id = await app.eval(() =>
    client.publish('Patient-open', [{ key: 'patient', resource: { resourceType: 'Patient', id: 'p1' } }]),
  );
  assert.match(id, /^[0-9a-f-]{36}$/, 'a UUID (req 77)');
  await app.until(() => log.syncErrors.length === 1);
  const [se] = (await app.log()).syncErrors;
  assert.equal(se.eventId, id);
  assert.equal(se.eventName, 'Patient-open');
  assert.equal(se.subscriberName, 'Refuser');
  assert.equal(se.ownEvent, true);
  assert.equal(typeof se.diagnostics, 'string');
  const status = await app.eval(() => client.status());
  assert.equal(status.state, 'out-of-sync');
  assert.equal(status.reason.kind, 'own-event-not-followed');
  assert.equal(status.reason.subscriberName, 'Refuser');
  // req 81: resent after >= 10 s, with a new id and the original timestamp.
  const original = JSON.parse(app.requests.find((r) => r.method === 'POST' && r.body?.includes(id)).body);
  const resend = await eventually(
    () => app.requests.find((r) => r.method === 'POST' && r.body?.includes(`"${id}-resend-1"`)),
    { timeout: 13000, message: 'the resend' },
  );
  const body = JSON.parse(resend.body);
  assert.equal(body.timestamp, original.timestamp);
  assert.deepEqual(body.event.context, original.event.context);
  await app.eval(() => client.close());
  await refuser.close();
});

test('req85 req86: a silent app: after the hub\'s ack timeout, onSyncError names it; the next followed change restores sync', async () => {
  env.hub.topic = uid('topic');
  const silent = await env.hub.join('Patient-open', { name: 'Silent', ack: false });
  const app = await sdkApp();
  const r = await env.hub.post(env.hub.event('Patient-open', [patient('p1')], { id: 'open-1' }));
  assert.equal(r.status, 202);
  await app.until(() => log.syncErrors.length === 1, undefined, { timeout: 6000 });
  const [se] = (await app.log()).syncErrors;
  assert.equal(se.eventId, 'open-1');
  assert.equal(se.subscriberName, 'Silent');
  assert.equal(se.ownEvent, false);
  const status = await app.eval(() => client.status());
  assert.equal(status.state, 'out-of-sync');
  assert.equal(status.reason.kind, 'sync-error');
  assert.equal(status.reason.eventId, 'open-1');
  // The hub dropped the silent app (req 87); the next change is followed by everyone left.
  await env.hub.post(env.hub.event('Patient-open', [patient('p2')], { id: 'open-2' }));
  await app.until(() => client.status().state === 'in-sync' && client.currentContext()?.anchor === 'Patient/p2');
  await app.eval(() => client.close());
  silent.ws.terminate();
});
