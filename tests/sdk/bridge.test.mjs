// Embedded apps through the EHR's page (issue 16): an EHR page (origin A) runs a FhircastBridge;
// apps in iframes from two other origins (B, C) connect with fhircast-sdk/embedded's
// connectViaParent. The bridge holds each app's subscription under the app's own name; the
// apps hold no token, no hub URL and no WebSocket. An iframe from an origin not allowed (D)
// gets nothing; a removed iframe is unsubscribed; a hub restart is reported inside each app.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setup, serveStatic, eventually, sleep, NPM, PAGES, patient } from './harness.mjs';

let env;
let b;
let c;
let d;
before(async () => {
  env = await setup({ bindings: { ACK_TIMEOUT_SECONDS: '3' } });
  [b, c, d] = await Promise.all([1, 2, 3].map(() => serveStatic({ '/npm/': NPM, '/pages/': PAGES })));
});
after(async () => {
  await Promise.allSettled([b, c, d].map((s) => s?.close()));
  await env?.teardown();
});

/** The EHR page with a bridge allowing B and C, and its console. */
async function ehr() {
  const context = await env.browser.newContext();
  const page = await context.newPage();
  const q = new URLSearchParams({ hub: env.hub.base, topic: env.hub.topic, allowed: JSON.stringify([b.origin, c.origin]) });
  await page.goto(`${env.server.origin}/pages/bridge-ehr.html?${q}`);
  await page.waitForFunction(() => window.ready === true || window.initError);
  assert.equal(await page.evaluate(() => window.initError), undefined);
  return page;
}

/** Embeds the app `name` from `origin` as iframe `id`; returns its frame once it settled. */
async function embed(page, id, origin, name, { timeout } = {}) {
  const q = new URLSearchParams({ name, ...(timeout ? { timeout: String(timeout) } : {}) });
  await page.evaluate(([i, src]) => window.embed(i, src), [id, `${origin}/pages/bridge-app.html?${q}`]);
  const frame = await (await page.waitForSelector(`#${id}`)).contentFrame();
  await frame.waitForFunction(() => window.connected || window.appError, null, { timeout: 10000 });
  return frame;
}

const roster = async () => (await env.hub.request(`/${env.hub.topic}/subscribers`)).json.subscribers;

test('bridge: two apps from two origins follow under their own names; each refusal is a SyncError naming that app, told to the other; no token, hub URL or WebSocket in an iframe', async () => {
  env.hub.topic = `bridge-${Date.now()}`;
  const page = await ehr();
  const appB = await embed(page, 'b', b.origin, 'Viewer B');
  const appC = await embed(page, 'c', c.origin, 'Reporter C');
  for (const f of [appB, appC]) assert.equal(await f.evaluate(() => window.appError), undefined);
  // The hub sees each embedded app as its own subscriber, under its own name.
  await eventually(async () => (await roster()).filter((s) => s.connected).map((s) => s.name).sort().join() === 'Reporter C,Viewer B', { message: 'both apps in the roster' });

  const anchor = (f) => f.evaluate(() => window.client.currentContext()?.anchor ?? null);
  assert.equal((await env.hub.post(env.hub.event('Patient-open', [patient('p1')], { id: 'open-1' }))).status, 202);
  await eventually(async () => (await anchor(appB)) === 'Patient/p1' && (await anchor(appC)) === 'Patient/p1', { message: 'both follow p1' });
  assert.deepEqual(await appB.evaluate(() => window.log.events), ['open-1']);
  // The same accessors as the main entry's, across the bridge.
  assert.deepEqual(await appB.evaluate(() => window.log.patients), ['p1']);
  assert.equal(await appB.evaluate(() => window.client.currentContext().resource('patient').id), 'p1');

  // B refuses: the hub's SyncError names B, and C is told.
  await appB.evaluate(() => (window.mode = 'refuse'));
  await env.hub.post(env.hub.event('Patient-open', [patient('p2')], { id: 'open-2' }));
  await eventually(() => appC.evaluate(() => window.log.syncErrors.some((e) => e.subscriberName === 'Viewer B' && e.eventId === 'open-2')), { message: 'C told that B refused' });
  assert.equal(await anchor(appC), 'Patient/p2');
  assert.equal(await anchor(appB), 'Patient/p1');
  assert.equal((await appB.evaluate(() => window.client.status())).state, 'out-of-sync');
  const rosterB = (await roster()).find((s) => s.name === 'Viewer B');
  assert.deepEqual(rosterB.lastAnswer, { id: 'open-2', event: 'Patient-open', status: 409 });

  // Now C refuses and B follows again: the SyncError names C, and B is told.
  await appB.evaluate(() => (window.mode = 'accept'));
  await appC.evaluate(() => (window.mode = 'refuse'));
  await env.hub.post(env.hub.event('Patient-open', [patient('p3')], { id: 'open-3' }));
  await eventually(() => appB.evaluate(() => window.log.syncErrors.some((e) => e.subscriberName === 'Reporter C' && e.eventId === 'open-3')), { message: 'B told that C refused' });
  await eventually(async () => (await anchor(appB)) === 'Patient/p3', { message: 'B follows p3' });
  // B shows p3, and says the session is not in step: C did not follow (its status, as any app's).
  const statusB = await appB.evaluate(() => window.client.status());
  assert.deepEqual([statusB.state, statusB.reason.kind, statusB.reason.subscriberName], ['out-of-sync', 'sync-error', 'Reporter C']);

  // An embedded app publishes through the bridge, under its own subscription.
  await appB.evaluate(() => window.client.publish('Patient-open', [{ key: 'patient', resource: { resourceType: 'Patient', id: 'p4' } }]));
  await eventually(async () => (await anchor(appB)) === 'Patient/p4', { message: 'B shows its own publish' });

  // Nothing of the hub in the iframes: no WebSocket, no request to the hub, no token or hub URL in the page.
  for (const f of [appB, appC]) {
    const seen = await f.evaluate(() => ({ sockets: window.socketsOpened, fetched: window.fetched, html: document.documentElement.outerHTML, url: location.href, resources: performance.getEntriesByType('resource').map((r) => r.name) }));
    assert.equal(seen.sockets, 0);
    assert.deepEqual(seen.fetched, []);
    for (const text of [seen.html, seen.url, ...seen.resources]) {
      assert.ok(!text.includes(env.hub.origin) && !text.includes('ehr-secret-token') && !text.includes(env.hub.topic), `the iframe saw the hub: ${text.slice(0, 200)}`);
    }
  }
  await page.context().close();
});

test('bridge: an iframe from an origin not allowed gets nothing and is told so; a page not embedded is told so too', async () => {
  env.hub.topic = `bridge-${Date.now()}`;
  const page = await ehr();
  const appD = await embed(page, 'd', d.origin, 'Intruder D', { timeout: 800 });
  const err = await appD.evaluate(() => window.appError);
  assert.equal(err.code, 'no-bridge');
  assert.ok(err.isFhircastError);
  assert.match(err.message, new RegExp(`does not allow this page's origin \\(${d.origin.replace(/[.:/]/g, '\\$&')}\\)`));
  assert.ok((await page.evaluate(() => window.bridgeLog)).some(([level, text]) => level === 'warn' && text.includes(`ignored an app from ${d.origin}`)));
  assert.deepEqual(await roster(), []);
  // Opened on its own (not in an iframe): told at once, without waiting.
  const alone = await (await env.browser.newContext()).newPage();
  await alone.goto(`${b.origin}/pages/bridge-app.html?name=Alone`);
  await alone.waitForFunction(() => window.appError);
  const e2 = await alone.evaluate(() => window.appError);
  assert.equal(e2.code, 'no-bridge');
  assert.match(e2.message, /not embedded in another page/);
  await alone.context().close();
  await page.context().close();
});

test('bridge: removing or navigating an iframe unsubscribes its app (close 1000, no SyncError); a hub restart is reported inside each embedded app, which then follows again', async () => {
  env.hub.topic = `bridge-${Date.now()}`;
  const page = await ehr();
  const appB = await embed(page, 'b', b.origin, 'Viewer B');
  const appC = await embed(page, 'c', c.origin, 'Reporter C');
  await eventually(async () => (await roster()).filter((s) => s.connected).length === 2, { message: 'two subscribers' });

  await page.evaluate(() => window.unembed('b'));
  await eventually(async () => (await roster()).map((s) => s.name).join() === 'Reporter C', { message: 'B unsubscribed', timeout: 5000 });
  await env.hub.post(env.hub.event('Patient-open', [patient('p1')], { id: 'after-removal' }));
  await eventually(() => appC.evaluate(() => window.client.currentContext()?.anchor === 'Patient/p1'), { message: 'C follows' });
  await sleep(300);
  assert.deepEqual(await appC.evaluate(() => window.log.syncErrors), [], 'a removed app is not a failed one');

  // An iframe that navigates away ends its subscription too (the page said goodbye).
  const appE = await embed(page, 'e', b.origin, 'Navigating E');
  await eventually(async () => (await roster()).some((s) => s.name === 'Navigating E' && s.connected), { message: 'E subscribed' });
  assert.equal(await appE.evaluate(() => window.appError), undefined);
  await page.evaluate(() => (document.getElementById('e').src = 'about:blank'));
  await eventually(async () => !(await roster()).some((s) => s.name === 'Navigating E'), { message: 'E unsubscribed after navigating', timeout: 5000 });
  assert.deepEqual(await appC.evaluate(() => window.log.syncErrors), [], 'leaving is not failing');

  await env.hub.restart();
  await eventually(() => appC.evaluate(() => window.log.status.includes('disconnected')), { message: 'C shows the lost connection', timeout: 10000 });
  await eventually(() => appC.evaluate(() => window.client.status().state === 'in-sync'), { message: 'C in sync again', timeout: 15000 });
  await env.hub.post(env.hub.event('Patient-open', [patient('p2')], { id: 'after-restart' }));
  await eventually(() => appC.evaluate(() => window.client.currentContext()?.anchor === 'Patient/p2'), { message: 'C follows after the restart' });
  await page.context().close();
});
