// Subscribing, confirmation, replay, the access token and init (SUB items 19, 24-25, 43-44).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setup, patient, uid, eventually } from './harness.mjs';

let env;
before(async () => (env = await setup()));
after(async () => env?.teardown());

test('init: using the client before `await init()` throws an error that says so', async () => {
  const app = await env.app();
  const msg = await app.eval(() => window.beforeInit);
  assert.match(msg, /await init\(\)/);
});

test('req43 req44: connect resolves on the confirmation; the replayed current context reaches the handler', async () => {
  const topic = (env.hub.topic = uid('topic'));
  const posted = await env.hub.post(env.hub.event('Patient-open', [patient('p1')], { id: 'open-p1' }));
  assert.equal(posted.status, 202, posted.text);
  const app = await env.app();
  const status = await app.connect(
    { events: ['Patient-open', 'Patient-close'], subscriberName: 'Viewer' },
    `{ 'patient-open': (e) => { log.events.push(e); } }`,
  );
  assert.equal(status.state, 'connecting', 'confirmed, current context not yet read');
  await app.until(() => log.events.length === 1);
  const [event] = (await app.log()).events;
  assert.equal(event.id, 'open-p1');
  assert.equal(event.event['hub.topic'], topic);
  assert.equal(event.event.context[0].resource.id, 'p1');
  await app.until(() => client.status().state === 'in-sync');
  const current = await app.eval(() => client.currentContext());
  assert.equal(current.anchor, 'Patient/p1');
  assert.equal(current.event, 'Patient-open');
  assert.deepEqual(
    app.acks().filter((a) => a.id === 'open-p1'),
    [{ id: 'open-p1', status: 200 }],
  );
  const states = (await app.log()).status.map((s) => s.state);
  assert.deepEqual(states.slice(-1), ['in-sync']);
  assert.ok(states.includes('connecting'));
  await app.eval(() => client.close());
});

test('req24 req25 req19: the subscription form, and the bearer token from an async provider before every request', async () => {
  env.hub.topic = uid('topic');
  const app = await env.app();
  await app.eval(() => {
    window.tokenCalls = 0;
  });
  await app.page.evaluate(async ({ hubUrl, topic }) => {
    window.client = await FhircastClient.connect({
      hubUrl,
      topic,
      events: 'Patient-open, patient-open, Patient-close',
      subscriberName: 'Viewer app',
      leaseSeconds: 600,
      accessToken: async () => `token-${++window.tokenCalls}`,
    });
  }, app.hub);
  const sub = app.requests.find((r) => r.method === 'POST' && r.url === env.hub.base);
  assert.equal(sub.headers['content-type'], 'application/x-www-form-urlencoded');
  assert.equal(sub.headers.authorization, 'Bearer token-1');
  const form = new URLSearchParams(sub.body);
  assert.equal(form.get('hub.channel.type'), 'websocket');
  assert.equal(form.get('hub.mode'), 'subscribe');
  assert.equal(form.get('hub.topic'), env.hub.topic);
  assert.equal(form.get('hub.events'), 'Patient-open,Patient-close', 'each event once, canonical (req 25, 29)');
  assert.equal(form.get('hub.lease_seconds'), '600');
  assert.equal(form.get('subscriber.name'), 'Viewer app');
  // The current-context GET after the confirmation used a fresh token.
  const get = await eventually(() => app.requests.find((r) => r.method === 'GET' && r.url.startsWith(`${env.hub.base}/`)));
  assert.equal(get.headers.authorization, 'Bearer token-2');
  await app.eval(() => client.close());
});

test('connect rejects with a FhircastError naming the problem', async () => {
  const app = await env.app();
  const errors = await app.page.evaluate(async ({ hubUrl, topic }) => {
    const out = {};
    const attempt = async (name, options) => {
      try {
        await FhircastClient.connect(options);
        out[name] = 'resolved';
      } catch (e) {
        out[name] = { name: e.name, message: e.message, status: e.status };
      }
    };
    await attempt('noEvents', { hubUrl, topic });
    await attempt('wildcard', { hubUrl, topic, events: ['Patient-*'] });
    await attempt('relativeUrl', { hubUrl: '/api/hub', topic, events: ['Patient-open'] });
    await attempt('unreachable', { hubUrl: 'http://127.0.0.1:9/api/hub', topic, events: ['Patient-open'] });
    await attempt('notFound', { hubUrl: hubUrl + '/nope/deeper', topic, events: ['Patient-open'] });
    // Bad options reject like every other failure (no synchronous throw).
    const p = FhircastClient.connect({ hubUrl, topic });
    out.isPromise = p instanceof Promise;
    await p.catch(() => {});
    return out;
  }, app.hub);
  assert.match(errors.noEvents.message, /events/);
  assert.equal(errors.noEvents.name, 'FhircastError');
  assert.match(errors.wildcard.message, /wildcards/);
  assert.match(errors.relativeUrl.message, /hubUrl/);
  assert.match(errors.unreachable.message, /no answer from the hub/);
  assert.equal(typeof errors.notFound.status, 'number');
  assert.equal(errors.isPromise, true);
});
