// The hub inspector (examples/inspector, issue 17) in Chromium, watching a real session of the
// examples: the embedded app refuses a context change; the inspector shows the refusal and the
// SyncError as they happen (no reload), highlighted, in the app's lane and the roster.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setup, embedded, inSync } from './harness.mjs';

let env;
before(async () => (env = await setup()));
after(async () => env?.teardown());

const APP = 'Patient summary (embedded)';

test('inspector: a refusal and the SyncError it causes appear as they happen, highlighted, with the refusing app named in the timeline, its lane and the roster', async () => {
  await env.fresh();
  const ehr = await env.ehr();
  const inspector = await env.open(`/inspector/?topic=${env.topic}&every=200`);
  // The session so far: the EHR and its embedded app subscribed and connected.
  await inspector.locator('#roster tr[data-app="EHR"]').waitFor();
  await inspector.locator(`#roster tr[data-app="${APP}"]`).waitFor();
  await inspector.locator('#timeline li[data-fact="connected"]', { hasText: APP }).waitFor();

  const app = embedded(ehr);
  await ehr.locator('[data-open="Patient/pat-ada"]').click();
  await app.locator('#patient', { hasText: 'Lovelace, Ada' }).waitFor();
  await inspector.locator('#timeline li[data-fact="event"]', { hasText: 'Patient-open Patient/pat-ada' }).waitFor();
  await inspector.locator('#timeline li[data-fact="answered"]', { hasText: `${APP}: 200 to Patient-open` }).waitFor();
  assert.equal(await inspector.locator('#timeline li.refused, #timeline li.syncerror').count(), 0, 'nothing highlighted before the refusal');

  await app.locator('input[name=guard][value=refuse]').check();
  await ehr.locator('[data-open="Patient/pat-grace"]').click();
  await inSync(app, { state: 'out-of-sync' });
  // As it happens: the page was not reloaded.
  const refusal = inspector.locator('#timeline li.refused[data-fact="answered"]', { hasText: `${APP}: 409 to Patient-open` });
  const syncError = inspector.locator('#timeline li.syncerror', { hasText: `${APP} did not follow Patient-open` });
  await refusal.waitFor();
  await syncError.waitFor();
  assert.match(await syncError.textContent(), /refused to follow Patient-open \(409 Conflict\)/);
  // Newest first: the SyncError above the refusal that caused it.
  const order = await inspector.locator('#timeline li').evaluateAll((lis) => lis.map((li) => li.className));
  assert.ok(order.indexOf('syncerror') < order.indexOf('refused'), order.join(' '));
  // The app's lane: followed once, then refused, then the SyncError naming it.
  const lane = inspector.locator(`#lanes .lane[data-app="${APP}"]`);
  await lane.locator('.mark.syncerror').waitFor();
  const marks = await lane.locator('.mark').allTextContents();
  assert.deepEqual(marks.slice(-3), ['200', '409', 'SyncError'], marks.join(' '));
  await inspector.locator(`#roster tr[data-app="${APP}"] td.bad`, { hasText: '409 to Patient-open' }).waitFor();
  await env.shot(inspector, 'inspector');
  assert.deepEqual(env.errors, []);
});
