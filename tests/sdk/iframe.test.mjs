// An app embedded in an EHR page from another origin (an iframe) connects with the SMART
// launch parameters and follows the context the EHR sets (SUB items 6-7, 19; CORS §5a-24).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setup, serveStatic, uid, eventually, NPM, PAGES } from './harness.mjs';

let env;
let originB;
before(async () => {
  env = await setup();
  originB = await serveStatic({ '/npm/': NPM, '/pages/': PAGES });
});
after(async () => {
  await originB?.close();
  await env?.teardown();
});

test('req6 req7: an iframe app from origin B follows the context set by the EHR page on origin A', async () => {
  env.hub.topic = uid('topic');
  assert.notEqual(new URL(originB.origin).origin, new URL(env.server.origin).origin);
  const q = new URLSearchParams({ hub: env.hub.base, topic: env.hub.topic, appOrigin: originB.origin });
  const ehr = await env.app({ page: `/pages/ehr.html?${q}` });
  const frame = await (async () => {
    for (let i = 0; i < 100; i++) {
      const f = ehr.page.frames().find((f) => f.url().startsWith(originB.origin));
      if (f) return f;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error('no iframe from origin B');
  })();
  await frame.waitForFunction(() => window.client?.status().state === 'in-sync' || window.appError, null, { timeout: 10000 });
  assert.equal(await frame.evaluate(() => window.appError ?? null), null);

  // The EHR (origin A) opens a patient with its own client; the embedded app follows.
  await ehr.connect({ events: ['Patient-open'], subscriberName: 'EHR' });
  await ehr.eval(() =>
    client.publish('Patient-open', [{ key: 'patient', resource: { resourceType: 'Patient', id: 'p7', name: [{ family: 'Doe' }] } }]),
  );
  await frame.waitForFunction(() => document.getElementById('patient').textContent === 'Patient/p7', null, { timeout: 5000 });
  assert.equal(await frame.evaluate(() => document.getElementById('status').textContent), 'in-sync');
  assert.equal(await frame.evaluate(() => window.client.currentContext().context[0].resource.name[0].family), 'Doe');

  // The embedded app's requests came from origin B, with the launch's token.
  const sub = await eventually(() => ehr.requests.find((r) => r.method === 'POST' && r.body?.includes('Embedded') && r.headers.origin));
  assert.equal(sub.headers.origin, originB.origin);
  assert.equal(sub.headers.authorization, 'Bearer embedded-token');

  // And the EHR closing the patient clears it in the iframe.
  await ehr.eval(() =>
    client.publish('Patient-close', [{ key: 'patient', resource: { resourceType: 'Patient', id: 'p7' } }]).catch((e) => e.message),
  );
  await frame.waitForFunction(() => document.getElementById('patient').textContent === 'none', null, { timeout: 5000 });
  await frame.evaluate(() => window.client.close());
  await ehr.eval(() => client.close());
});

test('req7: fromSmartLaunch without hub.url/hub.topic explains what is missing', async () => {
  const app = await env.app();
  const msg = await app.eval(() =>
    FhircastClient.fromSmartLaunch({ access_token: 't' }, { events: ['Patient-open'] }).then(
      () => 'resolved',
      (e) => e.message,
    ),
  );
  assert.match(msg, /hub\.url.*hub\.topic.*fhircast\//);
});
