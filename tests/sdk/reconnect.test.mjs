// Staying connected (SUB items 48, 57): reconnecting after the hub restarts, and renewing the
// lease before it ends.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setup, patient, uid, sleep } from './harness.mjs';

let env;
before(async () => (env = await setup()));
after(async () => env?.teardown());

test('req48 req54: after hub.restart() the status goes disconnected, then back to in-sync with the current context resynced', async () => {
  env.hub.topic = uid('topic');
  await env.hub.post(env.hub.event('Patient-open', [patient('p1')]));
  const app = await env.app();
  await app.connect({ events: ['Patient-open', 'Patient-close'], subscriberName: 'Viewer' }, `{}`);
  await app.until(() => client.status().state === 'in-sync' && client.currentContext()?.anchor === 'Patient/p1');
  await env.hub.restart();
  await app.until(() => log.status.some((s) => s.state === 'disconnected'), undefined, { timeout: 10000 });
  // The context changes while the app is away: it must learn it on reconnecting.
  const r = await env.hub.post(env.hub.event('Patient-open', [patient('p2')]));
  assert.equal(r.status, 202, r.text);
  await app.until(() => client.status().state === 'in-sync' && client.currentContext()?.anchor === 'Patient/p2', undefined, {
    timeout: 15000,
  });
  const { status } = await app.log();
  const disconnected = status.find((s) => s.state === 'disconnected');
  assert.equal(disconnected.reason.kind, 'disconnected');
  assert.match(disconnected.reason.message, /lost|hub/);
  assert.equal(status.at(-1).state, 'in-sync');
  assert.ok(app.sockets.length >= 2, 'a new subscription and a new socket');
  assert.notEqual(app.sockets[0], app.sockets.at(-1), 'a new endpoint (endpoints are single-use)');
  // Still following: a live change arrives on the new socket.
  await env.hub.post(env.hub.event('Patient-open', [patient('p3')]));
  await app.until(() => client.currentContext()?.anchor === 'Patient/p3');
  await app.eval(() => client.close());
});

test('req57: a short lease is renewed on the same socket before it ends', async () => {
  env.hub.topic = uid('topic');
  const app = await env.app();
  await app.connect({ events: ['Patient-open'], subscriberName: 'Viewer', leaseSeconds: 2 }, `{}`);
  await app.until(() => client.status().state === 'in-sync');
  await sleep(5500);
  const subscribes = app.requests
    .filter((r) => r.method === 'POST' && r.url === env.hub.base)
    .map((r) => new URLSearchParams(r.body));
  const renewals = subscribes.filter((f) => f.get('hub.channel.endpoint'));
  assert.ok(renewals.length >= 2, `renewed every ~1.6 s (${renewals.length} renewals)`);
  for (const f of renewals) {
    assert.equal(f.get('hub.mode'), 'subscribe');
    assert.equal(f.get('hub.channel.endpoint'), app.sockets[0], 'the current endpoint');
    assert.equal(f.get('hub.lease_seconds'), '2');
  }
  assert.equal(app.sockets.length, 1, 'never reconnected');
  const { status } = await app.log();
  assert.deepEqual(
    status.map((s) => s.state),
    ['connecting', 'in-sync'],
    'a renewal is not a reconnection: the status stays in-sync',
  );
  const gets = app.requests.filter((r) => r.method === 'GET' && r.url.startsWith(`${env.hub.base}/`));
  assert.equal(gets.length, 1, 'the current context is read once, after connecting');
  await env.hub.post(env.hub.event('Patient-open', [patient('p9')], { id: 'after-renewals' }));
  await app.until(() => client.currentContext()?.anchor === 'Patient/p9');
  assert.equal(app.acks().find((a) => a.id === 'after-renewals')?.status, 200);
  await app.eval(() => client.close());
});
