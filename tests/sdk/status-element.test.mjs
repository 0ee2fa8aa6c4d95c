// <fhircast-status> (fhircast-sdk/status, issue 15): the drop-in banner says whether the app
// shows the session's context, names the patient, and when another app could not follow says
// who and what, at once (an assertive live region); themable by CSS custom properties.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setup, patient, uid } from './harness.mjs';

let env;
before(async () => (env = await setup()));
after(async () => env?.teardown());

test('status element: in sync naming the patient; a refusal by another app is announced assertively with who and what; quiet hides it while in sync; themable', async () => {
  env.hub.topic = uid('topic');
  const app = await env.app({ page: '/pages/status.html' });
  assert.equal((await app.eval(() => banner('banner'))).state, 'connecting', 'before a client is set');
  await app.connect({ events: ['Patient-open', 'SyncError'], subscriberName: 'Viewer' });
  await app.eval(() => {
    for (const id of ['banner', 'quiet', 'themed']) document.getElementById(id).client = client;
  });
  let b = await app.eval(() => banner('banner'));
  assert.equal(b.state, 'in-sync');
  assert.match(b.text, /^In sync/);
  assert.equal(b.role, 'status');
  assert.equal(b.live, 'polite');
  assert.equal((await app.eval(() => banner('quiet'))).visible, false, 'quiet: hidden while in sync');

  const named = patient('p7', { name: [{ given: ['Ada'], family: 'Lovelace' }] });
  assert.equal((await env.hub.post(env.hub.event('Patient-open', [named]))).status, 202);
  await app.until(() => banner('banner').text.includes('Ada Lovelace (Patient/p7)'));

  // Another app refuses the next patient: every app is told, naming it and the event.
  const refuser = await env.hub.join('Patient-open', { name: 'Dictation', ack: 409 });
  assert.equal((await env.hub.post(env.hub.event('Patient-open', [patient('p8')]))).status, 202);
  await app.until(() => banner('banner').state === 'out-of-sync');
  b = await app.eval(() => banner('banner'));
  assert.match(b.text, /Out of sync: Dictation did not follow Patient-open/);
  assert.equal(b.role, 'alert');
  assert.equal(b.live, 'assertive');
  const quiet = await app.eval(() => banner('quiet'));
  assert.equal(quiet.visible, true, 'quiet: shown when out of sync');
  assert.equal((await app.eval(() => banner('themed'))).background, 'rgb(1, 2, 3)', '--fhircast-status-out-of-sync-bg');
  assert.notEqual(b.background, 'rgb(1, 2, 3)');

  // Detached from the client: no more updates, no errors.
  await app.eval(() => (document.getElementById('banner').client = null));
  assert.equal((await app.eval(() => banner('banner'))).state, 'connecting');
  await app.eval(() => client.close());
  await refuser.close();
  assert.deepEqual(app.errors, []);
});

test('status element: importable where there is no DOM (server rendering): nothing is defined, nothing throws', async () => {
  const mod = await import('../../npm/pkg/status.js');
  assert.equal(typeof mod.FhircastStatus, 'function');
});
