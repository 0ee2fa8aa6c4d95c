// The EHR example embeds its app through a FhircastBridge (issue 16): the iframe's URL carries
// nothing of the hub, its page loads no WebAssembly and opens no WebSocket, and the hub sees the
// app under its own name. `/ehr/?embed=direct` embeds the same app the other way (its own
// subscriber, hub URL and topic in its URL), to show both.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setup, embedded, inSync } from './harness.mjs';

let env;
before(async () => (env = await setup()));
after(async () => env?.teardown());

const APP = 'Patient summary (embedded)';

/** What the embedded app's page loaded and holds. */
const inside = (ehr) =>
  ehr.frame({ url: /\/embedded\// }).evaluate(() => ({
    url: location.href,
    resources: performance.getEntriesByType('resource').map((r) => r.name),
    html: document.documentElement.outerHTML,
  }));

test("EHR example: the embedded app follows through the EHR page's bridge, with no hub URL, topic, WebAssembly or WebSocket in its iframe", async () => {
  await env.fresh();
  const ehr = await env.ehr();
  const seen = await inside(ehr);
  assert.equal(new URL(seen.url).pathname, '/embedded/');
  assert.equal(new URL(seen.url).search, '');
  for (const r of seen.resources) assert.ok(!r.endsWith('.wasm') && !r.includes('/api/hub'), `the iframe loaded ${r}`);
  assert.ok(!seen.html.includes(env.topic), 'the topic in the iframe');
  assert.match(await embedded(ehr).locator('#how').textContent(), /through the EHR page's bridge/);
  // The hub sees it under its own name.
  const roster = (await env.hub.request(`/${env.topic}/subscribers`)).json.subscribers;
  assert.deepEqual(roster.map((s) => [s.name, s.connected]).sort(), [['EHR', true], [APP, true]]);
  await ehr.locator('[data-open="Patient/pat-ada"]').click();
  await embedded(ehr).locator('#patient', { hasText: 'Lovelace, Ada' }).waitFor();
  await inSync(embedded(ehr));
});

test('EHR example with ?embed=direct: the same app embedded as its own subscriber, hub URL and topic in its URL', async () => {
  await env.fresh();
  const ehr = await env.open(`/ehr/?topic=${env.topic}&embed=direct`);
  await inSync(ehr);
  await inSync(embedded(ehr));
  const seen = await inside(ehr);
  assert.equal(new URL(seen.url).searchParams.get('hub.topic'), env.topic);
  assert.ok(seen.resources.some((r) => r.endsWith('.wasm')), 'the app loads the SDK itself');
  assert.match(await embedded(ehr).locator('#how').textContent(), /its own subscriber/);
  await ehr.locator('[data-open="Patient/pat-grace"]').click();
  await embedded(ehr).locator('#patient', { hasText: 'Hopper, Grace' }).waitFor();
  assert.deepEqual(env.errors, []);
});
