// fhircast-sdk/testing (issue 15): the in-process hub an app's tests run against. Each fault it
// offers is injected here under the real SDK client (npm/pkg, in Node), and what the client
// does is checked against what the hub in workerd makes it do (tests/sdk/reconnect, syncerror):
// the kit is only useful if an app meets the same behaviour in its tests as in production.
// One test runs the kit in Chromium, as a Playwright test's page would.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { NPM, PAGES, eventually, launchBrowser, serveStatic } from './harness.mjs';

const { default: init, FhircastClient } = await import(join(NPM, 'pkg', 'index.js'));
const { createTestHub, FhircastError } = await import(join(NPM, 'pkg', 'testing.js'));

before(() => init());

const patient = (id) => ({ patient: { resourceType: 'Patient', id } });

/** A client of the app under test, recording what it was told. */
async function connectApp(hub, { name = 'App under test', on = {}, events = ['Patient-open', 'Patient-close', 'SyncError'] } = {}) {
  const seen = { patients: [], syncErrors: [], states: [] };
  const client = await FhircastClient.connect({
    hubUrl: hub.url,
    topic: hub.topic,
    subscriberName: name,
    events,
    on,
    onContextChange: (c) => seen.patients.push(c?.resource('patient')?.id ?? null),
    onSyncError: (e) => seen.syncErrors.push(e),
    onStatusChange: (s) => seen.states.push(s.state),
  });
  return { client, seen };
}

/** A hub with the app under test connected; closed after `f`, whatever happens. */
async function withHub(options, f) {
  const hub = await createTestHub(options);
  let app;
  try {
    app = await connectApp(hub);
    await f(hub, app);
  } finally {
    await app?.client.close();
    await hub.close();
  }
}

test('testing kit: the app under test subscribes, follows, and its answers are on record', async () => {
  await withHub({}, async (hub, { client, seen }) => {
    assert.equal(client.status().state, 'in-sync');
    assert.deepEqual(hub.subscribers().map((s) => [s.name, s.connected]), [['App under test', true]]);
    const r = await hub.publish('Patient-open', patient('p1'));
    assert.match(r['context.versionId'], /\S/, 'the hub versions the anchor (req 108)');
    await eventually(() => seen.patients.at(-1) === 'p1', { message: 'the app shows p1' });
    await eventually(() => hub.answersOf('App under test').length === 1);
    assert.deepEqual(hub.answersOf('App under test').map((a) => [a.event, a.status]), [['Patient-open', 200]]);
    assert.equal(hub.currentContext()['context.type'], 'Patient');
    // The app's own publish goes through the same hub and comes back to it (req 80).
    await client.publish('Patient-open', [{ key: 'patient', resource: { resourceType: 'Patient', id: 'p2' } }]);
    await eventually(() => seen.patients.at(-1) === 'p2');
    assert.equal(hub.timeline({ fact: 'event' }).length, 2);
  });
});

test('testing kit: a simulated app that refuses makes the hub send a SyncError naming it, which the app under test gets', async () => {
  await withHub({}, async (hub, { client, seen }) => {
    const pacs = await hub.app({ name: 'PACS', answer: 'refuse' });
    await hub.publish('Patient-open', patient('p1'));
    await eventually(() => seen.syncErrors.length === 1, { message: 'a SyncError' });
    assert.equal(seen.syncErrors[0].subscriberName, 'PACS');
    assert.equal(seen.syncErrors[0].eventName, 'Patient-open');
    assert.deepEqual(hub.syncErrors().map((f) => [f.subscriber, f.cause]), [['PACS', 'refused']]);
    assert.equal(pacs.received.length, 1);
    // The app under test followed, and says the session is not in sync, as with the hub in
    // workerd (syncerror.test.mjs); the answer policy can change between events.
    assert.equal(seen.patients.at(-1), 'p1');
    assert.equal(client.status().state, 'out-of-sync');
    assert.equal(client.status().reason.kind, 'sync-error');
    pacs.answer = (event) => (event.context[0].resource.id === 'p2' ? 'accept' : 'refuse');
    await hub.publish('Patient-open', patient('p2'));
    await eventually(() => hub.answersOf('PACS').length === 2);
    assert.deepEqual(hub.answersOf('PACS').map((a) => a.status), [409, 200]);
    assert.equal(seen.syncErrors.length, 1);
    await eventually(() => client.status().state === 'in-sync', { message: 'in sync once everyone followed' });
  });
});

test('testing kit: an answer later than the ack timeout makes an "unresponsive" SyncError; the late app is unsubscribed', async () => {
  await withHub({ ackTimeoutMs: 300 }, async (hub, { seen }) => {
    const slow = await hub.app({ name: 'Slow viewer', answer: { status: 'accept', delayMs: 1_000 } });
    await hub.publish('Patient-open', patient('p1'));
    await eventually(() => seen.syncErrors.length === 1, { timeout: 3_000, message: 'a SyncError' });
    assert.equal(seen.syncErrors[0].subscriberName, 'Slow viewer');
    assert.deepEqual(hub.syncErrors().map((f) => f.cause), ['unresponsive']);
    await eventually(() => slow.closed, { message: 'the hub closed the silent app' });
    assert.deepEqual(hub.subscribers().map((s) => s.name), ['App under test']);
  });
});

test('testing kit: a dropped socket: the app reconnects, reads the context again and is in sync', async () => {
  await withHub({}, async (hub, { client, seen }) => {
    await hub.publish('Patient-open', patient('p1'));
    await eventually(() => seen.patients.at(-1) === 'p1');
    const other = await hub.app({ name: 'PACS' });
    assert.equal(await hub.dropSocket(), 1, 'only the app under test');
    await eventually(() => seen.states.includes('disconnected'), { message: 'the app says it is disconnected' });
    await hub.publish('Patient-open', patient('p2')); // while it is away
    await eventually(() => client.status().state === 'in-sync' && seen.patients.at(-1) === 'p2', { timeout: 10_000, message: 'back, showing p2' });
    assert.equal(other.closed, false);
    // A simulated app's dropped socket: it comes back as a new subscription.
    assert.equal(await hub.dropSocket('PACS'), 1);
    await eventually(() => hub.subscribers().filter((s) => s.name === 'PACS' && s.connected).length === 1);
  });
});

test('testing kit: an expired lease: the hub denies and closes; the app subscribes again', async () => {
  await withHub({}, async (hub, { client, seen }) => {
    await hub.publish('Patient-open', patient('p1'));
    await eventually(() => seen.patients.at(-1) === 'p1');
    assert.equal(await hub.expireLease('App under test'), 1);
    assert.ok(hub.timeline({ fact: 'unsubscribed', subscriber: 'App under test' }).some((f) => f.reason === 'lease expired'));
    await eventually(() => hub.timeline({ fact: 'connected', subscriber: 'App under test' }).length === 2, { timeout: 10_000, message: 'a new subscription' });
    await eventually(() => client.status().state === 'in-sync');
    await hub.publish('Patient-open', patient('p2'));
    await eventually(() => seen.patients.at(-1) === 'p2');
  });
});

test('testing kit: a hub restart keeps the context; every app comes back', async () => {
  await withHub({}, async (hub, { client, seen }) => {
    const pacs = await hub.app({ name: 'PACS' });
    await hub.publish('Patient-open', patient('p1'));
    await eventually(() => seen.patients.at(-1) === 'p1');
    assert.equal(await hub.restart(), 2);
    assert.equal(hub.currentContext()['context.type'], 'Patient', 'the context survives');
    await eventually(() => hub.subscribers().filter((s) => s.connected).length === 2, { timeout: 10_000, message: 'both back' });
    await eventually(() => client.status().state === 'in-sync');
    await hub.publish('Patient-open', patient('p2'));
    await eventually(() => seen.patients.at(-1) === 'p2' && pacs.received.at(-1)?.context[0].resource.id === 'p2');
  });
});

test('testing kit: a SyncError sent by another app (req 75) reaches the app under test, which is told who could not follow what', async () => {
  await withHub({}, async (hub, { seen }) => {
    await hub.app({ name: 'Dictation' });
    const { id } = await hub.publish('Patient-open', patient('p1'));
    await eventually(() => seen.patients.at(-1) === 'p1');
    await hub.syncError({ from: 'Dictation', diagnostics: 'the microphone is in use' });
    await eventually(() => seen.syncErrors.length === 1);
    assert.equal(seen.syncErrors[0].subscriberName, 'Dictation');
    assert.equal(seen.syncErrors[0].eventId, id);
    assert.equal(hub.syncErrors()[0].cause, 'app');
  });
});

test('testing kit: the hub refuses what the deployed hub refuses, with its messages; other URLs are not touched', async () => {
  const hub = await createTestHub();
  const server = createServer((_, res) => res.end('elsewhere')).listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  try {
    let r = await fetch(hub.url, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'hub.mode=subscribe' });
    assert.equal(r.status, 400);
    assert.match(await r.text(), /hub\.channel\.type is missing/);
    r = await fetch(hub.url, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: '{}' });
    assert.equal(r.status, 415);
    r = await fetch(hub.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"id":"x"}' });
    assert.equal(r.status, 400);
    assert.equal((await r.json()).resourceType, 'OperationOutcome');
    await assert.rejects(hub.publish('Patient-open', []), (e) => e instanceof FhircastError && e.status === 400 && /patient/i.test(e.message));
    await assert.rejects(FhircastClient.connect({ hubUrl: hub.url, topic: hub.topic, events: ['Nonsense'] }), FhircastError);
    // Other URLs reach the network as before.
    assert.equal(await (await fetch(`http://127.0.0.1:${server.address().port}/`)).text(), 'elsewhere');
  } finally {
    server.close();
    await hub.close();
  }
  assert.equal(fetch.name, 'fetch');
  await assert.rejects(fetch(hub.url), 'closed and uninstalled: fhircast.test resolves nowhere');
});

test('testing kit: in Chromium, as a Playwright test uses it (the wasm fetched by URL)', async () => {
  const site = await serveStatic({ '/npm/': NPM, '/pages/': PAGES });
  const browser = await launchBrowser();
  try {
    const page = await browser.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(e));
    await page.goto(`${site.origin}/pages/app.html`);
    const result = await page.evaluate(async () => {
      const { default: init, FhircastClient } = await import('/npm/pkg/index.js');
      const { createTestHub } = await import('/npm/pkg/testing.js');
      await init();
      const hub = await createTestHub();
      const pacs = await hub.app({ name: 'PACS', answer: 'refuse' });
      const told = [];
      const client = await FhircastClient.connect({
        hubUrl: hub.url, topic: hub.topic, subscriberName: 'Page app', events: ['Patient-open', 'SyncError'],
        onSyncError: (e) => told.push(e.subscriberName),
      });
      await hub.publish('Patient-open', { patient: { resourceType: 'Patient', id: 'p1' } });
      await hub.waitFor({ fact: 'syncError' });
      while (!told.length) await new Promise((r) => setTimeout(r, 10));
      const state = client.status().state;
      await client.close();
      await hub.close();
      return { told, state, refusals: pacs.received.length, ws: WebSocket === window.WebSocket && WebSocket.name };
    });
    assert.deepEqual(result.told, ['PACS']);
    assert.equal(result.state, 'out-of-sync', 'the session is out of sync: an app could not follow');
    assert.equal(result.refusals, 1);
    assert.equal(result.ws, 'WebSocket', 'the page has its WebSocket back');
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
    await site.close();
  }
});
