// Ending a subscription (SUB items 49-50): close() unsubscribes and closes the WebSocket with
// code 1000, and the client goes quiet.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setup, patient, uid, sleep } from './harness.mjs';

let env;
before(async () => (env = await setup()));
after(async () => env?.teardown());

test('req49 req50: close() POSTs an unsubscribe form and closes the socket with 1000; nothing more happens', async () => {
  env.hub.topic = uid('topic');
  const observer = await env.hub.join('Patient-open,SyncError', { name: 'Observer' });
  const app = await env.app();
  await app.eval(() => {
    window.closeCalls = [];
    window.closeEvents = [];
    window.WebSocket = class extends WebSocket {
      constructor(...args) {
        super(...args);
        this.addEventListener('close', (e) => closeEvents.push({ code: e.code, wasClean: e.wasClean }));
      }
    };
    const close = WebSocket.prototype.close;
    WebSocket.prototype.close = function (code, reason) {
      window.closeCalls.push({ code, reason, readyState: this.readyState });
      return close.call(this, code, reason);
    };
  });
  await app.connect({ events: ['Patient-open'], subscriberName: 'Viewer' }, `{}`);
  await app.until(() => client.status().state === 'in-sync');
  const endpoint = app.sockets[0];

  const t0 = Date.now();
  await app.eval(() => client.close());
  const unsub = app.requests.filter((r) => r.method === 'POST' && new URLSearchParams(r.body ?? '').get('hub.mode') === 'unsubscribe');
  assert.equal(unsub.length, 1);
  const form = new URLSearchParams(unsub[0].body);
  assert.equal(unsub[0].headers['content-type'], 'application/x-www-form-urlencoded');
  assert.equal(form.get('hub.channel.type'), 'websocket');
  assert.equal(form.get('hub.topic'), env.hub.topic);
  assert.equal(form.get('hub.channel.endpoint'), endpoint);
  assert.equal(form.get('hub.events'), null, 'req 50: no hub.events');
  const calls = await app.eval(() => window.closeCalls);
  assert.equal(calls.length, 1);
  assert.equal(calls[0].code, 1000);
  // Chromium reports the close once the TCP connection is gone too (workerd's dev server lets
  // it linger ~2 s after the closing handshake).
  await app.until(() => window.closeEvents.length === 1, undefined, { timeout: 5000 });
  assert.deepEqual(await app.eval(() => window.closeEvents), [{ code: 1000, wasClean: true }]);
  assert.ok(Date.now() - t0 < 5000);
  const status = await app.eval(() => client.status());
  assert.equal(status.state, 'disconnected');
  assert.match(status.reason.message, /closed by the app/);
  assert.ok(await observer.nothing((m) => m.event?.['hub.event'] === 'SyncError', 700), 'a normal end: no SyncError');

  // Quiet afterwards: no timers, no requests, no reconnects; publishing is refused.
  const before = app.requests.length;
  await env.hub.post(env.hub.event('Patient-open', [patient('p2')]));
  await sleep(1500);
  assert.equal(app.requests.length, before);
  assert.equal(app.sockets.length, 1);
  const err = await app.eval(() =>
    client.publish('Patient-open', [{ key: 'patient', resource: { resourceType: 'Patient', id: 'p3' } }]).then(
      () => 'resolved',
      (e) => e.message,
    ),
  );
  assert.match(err, /closed/);
  await observer.close();
});
