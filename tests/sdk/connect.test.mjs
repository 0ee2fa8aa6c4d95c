// Subscribing, confirmation, replay, the access token and init (SUB items 19, 24-26, 29, 34,
// 43-44, 79); what a follower receives (3, 66, 68, 69, 129).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setup, patient, parameters, uid, eventually } from './harness.mjs';

let env;
before(async () => (env = await setup()));
after(async () => env?.teardown());

test('init: using the client before `await init()` throws an error that says so', async () => {
  const app = await env.app();
  const msg = await app.eval(() => window.beforeInit);
  assert.match(msg, /await init\(\)/);
  assert.deepEqual(await app.eval(() => window.beforeInitError), { instance: true, code: 'not-initialized' });
});

test('req43 req44 req34: connect resolves once the current context is known: the replayed open has reached the handler, currentContext() is it, onContextChange fired once', async () => {
  const topic = (env.hub.topic = uid('topic'));
  const posted = await env.hub.post(env.hub.event('Patient-open', [patient('p1')], { id: 'open-p1' }));
  assert.equal(posted.status, 202, posted.text);
  const app = await env.app();
  const status = await app.connect(
    { events: ['Patient-open', 'Patient-close'], subscriberName: 'Viewer' },
    `{ 'patient-open': (e) => { log.events.push(e); } }`,
  );
  // Resolved after the confirmation (req 43), the replay (req 44) and the current context read:
  // an app rendering currentContext() right after connect() shows the patient (issue 15).
  assert.equal(status.state, 'in-sync');
  assert.equal(await app.eval(() => client.currentContext()?.anchor), 'Patient/p1');
  assert.equal(await app.eval(() => log.events.length), 1, 'the handler ran before connect() resolved');
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
  assert.deepEqual((await app.log()).contexts.map((c) => c?.anchor), ['Patient/p1'], 'onContextChange once, not again for the snapshot');
  await app.eval(() => client.close());
});

test('req24 req25 req26 req29 req34 req19: the subscription form, and the bearer token from an async provider before every request', async () => {
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

test('req79: connect rejects with a FhircastError (a class, with a code) naming the problem, the URL and the likely cause', async () => {
  const app = await env.app();
  const errors = await app.page.evaluate(async ({ hubUrl, topic }) => {
    const out = {};
    const attempt = async (name, options) => {
      try {
        await FhircastClient.connect(options);
        out[name] = 'resolved';
      } catch (e) {
        out[name] = { name: e.name, message: e.message, status: e.status, code: e.code, instance: e instanceof FhircastError };
      }
    };
    await attempt('noEvents', { hubUrl, topic });
    await attempt('wildcard', { hubUrl, topic, events: ['Patient-*'] });
    await attempt('relativeUrl', { hubUrl: '/api/hub', topic, events: ['Patient-open'] });
    await attempt('unreachable', { hubUrl: 'http://127.0.0.1:9/api/hub', topic, events: ['Patient-open'] });
    await attempt('notFound', { hubUrl: hubUrl + '/nope/deeper', topic, events: ['Patient-open'] });
    await attempt('typoInOn', { hubUrl, topic, events: ['Patient-open'], on: { 'Patient-opn': () => {} } });
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
  assert.match(errors.unreachable.message, /subscribe failed: no answer from http:\/\/127\.0\.0\.1:9\/api\/hub \(.+\)\. Is the hub running there, and does it allow this page's origin \(CORS\)\?$/);
  assert.equal(errors.unreachable.code, 'network');
  assert.equal(errors.notFound.status, 404);
  assert.equal(errors.notFound.code, 'http');
  assert.match(errors.notFound.message, new RegExp(`${env.hub.base}/nope/deeper answered 404: .*is hubUrl the hub's URL with its base path`));
  assert.match(errors.typoInOn.message, /option `on` has a key that is not an event: "Patient-opn"/);
  assert.equal(errors.typoInOn.code, 'option');
  for (const [name, e] of Object.entries(errors)) {
    if (typeof e === 'object' && e.name) assert.equal(e.instance, true, `${name}: instanceof FhircastError`);
  }
  assert.equal(errors.isPromise, true);
});

test('req3 req66 req68 req69: a full resource and an extension entry reach the app as sent; each open replaces the context completely', async () => {
  env.hub.topic = uid('topic');
  const app = await env.app();
  await app.connect({ events: ['Patient-open', 'Patient-close'] }, `{ '*': (e) => { log.events.push(e); } }`);
  await app.until(() => client.status().state === 'in-sync');
  // More than the profiled minimum (req 66): identifiers, names, extensions, non-ASCII text.
  const full = {
    resourceType: 'Patient',
    id: 'p1',
    meta: { versionId: '3', lastUpdated: '2024-01-02T03:04:05Z' },
    extension: [{ url: 'http://example.org/fhir/birthsex', valueCode: 'F' }],
    identifier: [{ system: 'urn:oid:1.2.36.146.595.217.0.1', value: '12345' }],
    name: [{ family: 'Lévy', given: ['Zoë', 'Ann'] }],
    birthDate: '1974-12-25',
    contact: [{ relationship: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0131', code: 'N' }] }] }],
  };
  const first = [{ key: 'patient', resource: full }, { key: 'extension', data: { 'user-timezone': '+1:00', nested: { list: [1, 2] } } }];
  const open1 = env.hub.event('Patient-open', first);
  assert.equal((await env.hub.post(open1)).status, 202);
  await app.until((id) => log.events.some((e) => e.id === id), open1.id);
  const got = (await app.log()).events.find((e) => e.id === open1.id);
  assert.deepEqual(got.event.context, first, 'the handler gets every field, in FHIR JSON (req 3)');
  assert.deepEqual((await app.eval(() => client.currentContext())).context, first);
  // A second open is not a delta: nothing of the first remains (req 68).
  const second = [{ key: 'patient', resource: { resourceType: 'Patient', id: 'p2' } }];
  const open2 = env.hub.event('Patient-open', second);
  assert.equal((await env.hub.post(open2)).status, 202);
  await app.until(() => client.currentContext()?.anchor === 'Patient/p2');
  assert.deepEqual((await app.eval(() => client.currentContext())).context, second);
  assert.deepEqual(
    app.acks().filter((a) => a.id === open1.id || a.id === open2.id),
    [
      { id: open1.id, status: 200 },
      { id: open2.id, status: 200 },
    ],
  );
  await app.eval(() => client.close());
});

test('req129: UserLogout reaches its handler and clears what the app shows', async () => {
  env.hub.topic = uid('topic');
  const app = await env.app();
  await app.connect({ events: ['Patient-open', 'UserLogout'] }, `{ 'UserLogout': (e) => { log.events.push(e.event['hub.event']); } }`);
  await app.until(() => client.status().state === 'in-sync');
  await env.hub.post(env.hub.event('Patient-open', [patient('p1')]));
  await app.until(() => client.currentContext()?.anchor === 'Patient/p1');
  const logout = env.hub.event('UserLogout', [parameters('user-initiated')]);
  assert.equal((await env.hub.post(logout)).status, 202);
  await app.until(() => log.events.includes('UserLogout') && client.currentContext() === null);
  assert.deepEqual(await eventually(() => app.acks().find((a) => a.id === logout.id)), { id: logout.id, status: 200 });
  assert.equal(await app.eval(() => client.status().state), 'in-sync');
  await app.eval(() => client.close());
});

test("issue 15: event.resource('patient') in handlers, and currentContext() / onContextChange's resource(key): the context entry's resource, not enumerated (JSON and postMessage carry only the data)", async () => {
  env.hub.topic = uid('topic');
  const app = await env.app();
  await app.connect(
    { events: ['Patient-open', 'ImagingStudy-open'], subscriberName: 'Viewer' },
    `{ 'Patient-open': (e) => { log.events.push([e.resource('patient')?.id, e.resource('nothing'), Object.keys(e).includes('resource'), JSON.stringify(e).includes('"resource":{')]); } }`,
  );
  await app.eval(() => window.client.onContextChange((c) => window.log.contexts.push(['listener', c?.resource('patient')?.id ?? null])));
  await env.hub.post(env.hub.event('Patient-open', [patient('p7')], { id: 'open-p7' }));
  await eventually(async () => (await app.log()).events.length === 1, { message: 'the handler ran' });
  // The accessor finds the entry; it is no own enumerable key (the event's JSON still has its resources).
  assert.deepEqual((await app.log()).events[0], ['p7', undefined, false, true]);
  assert.equal(await app.eval(() => window.client.currentContext().resource('patient').id), 'p7');
  await eventually(async () => (await app.log()).contexts.some((c) => Array.isArray(c) && c[1] === 'p7'), { message: 'onContextChange got resource()' });
});
