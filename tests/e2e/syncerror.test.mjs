// "Unsaved work": the embedded app refuses a context change (409), or asks its user first (202)
// and then refuses (a SyncError, req 75). The EHR and the viewer show the SyncError naming the
// app; the EHR's panel shows the refusal.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setup, embedded, inSync } from './harness.mjs';

let env;
before(async () => (env = await setup()));
after(async () => env?.teardown());

const APP = 'Patient summary (embedded)';

test('the embedded app refuses (409): the EHR and the viewer show the SyncError naming the app', async () => {
  await env.fresh();
  const ehr = await env.ehr();
  const viewer = await env.app('/viewer/');
  const app = embedded(ehr);
  await ehr.locator('[data-open="Patient/pat-ada"]').click();
  await app.locator('#patient', { hasText: 'Lovelace, Ada' }).waitFor();

  await app.locator('input[name=guard][value=refuse]').check();
  await ehr.locator('[data-open="Patient/pat-grace"]').click();
  // The viewer follows; the embedded app keeps Ada and says why.
  await viewer.locator('#patient', { hasText: 'Hopper, Grace' }).waitFor();
  await inSync(app, { state: 'out-of-sync' });
  assert.match(await app.locator('#banner').textContent(), /you kept your work and did not follow Patient-open/);
  assert.equal(await app.locator('#patient').textContent(), 'Lovelace, Ada');
  // The others are told who did not follow (req 84, 92).
  const expected = new RegExp(`${APP.replace(/[()]/g, '\\$&')} did not follow Patient-open`);
  await ehr.locator('#syncerrors li.syncerror', { hasText: expected }).waitFor();
  await viewer.locator('#syncerrors li.syncerror', { hasText: expected }).waitFor();
  await inSync(viewer, { state: 'out-of-sync' });
  assert.match(await viewer.locator('#banner').textContent(), expected);
  assert.match(await ehr.locator('#syncerrors').textContent(), /refused to follow Patient-open \(409 Conflict\)/);
  await ehr.locator(`#subscribers tr[data-name="${APP}"] td.bad`, { hasText: 'refused Patient-open' }).waitFor();
  await env.shot(ehr, 'ehr-syncerror');
  await env.shot(viewer, 'viewer-syncerror');

  // Work saved: the next change is followed, and every app is in sync again.
  await app.locator('input[name=guard][value=none]').check();
  await ehr.locator('[data-open="Patient/pat-alan"]').click();
  await app.locator('#patient', { hasText: 'Turing, Alan' }).waitFor();
  await inSync(app);
  await inSync(viewer);
  assert.deepEqual(env.errors, []);
});

test('the embedded app asks its user first (202): keeping the work refuses with a SyncError; discarding follows', async () => {
  await env.fresh();
  const ehr = await env.ehr();
  const viewer = await env.app('/viewer/');
  const app = embedded(ehr);
  const row = ehr.locator(`#subscribers tr[data-name="${APP}"]`);
  await app.locator('input[name=guard][value=ask]').check();

  await ehr.locator('[data-open="ImagingStudy/st-ada-ct"]').click();
  const dialog = app.locator('dialog#ask');
  await dialog.waitFor();
  assert.match(await dialog.locator('p').textContent(), /unsaved work.*ImagingStudy-open \(Lovelace, Ada · CT chest with contrast\)/);
  // While the user decides, the hub knows the app answered 202 (req 75), and the EHR does not
  // just say "in sync": it names the app it is waiting for.
  await row.locator('td', { hasText: 'deciding about ImagingStudy-open' }).waitFor();
  await ehr.locator('#banner', { hasText: `waiting for ${APP} (ImagingStudy-open)` }).waitFor();
  await env.shot(ehr, 'ehr-ask');
  await dialog.locator('button[value=no]').click();
  await ehr.locator('#syncerrors li.syncerror', { hasText: `${APP} did not follow ImagingStudy-open` }).waitFor();
  await viewer.locator('#syncerrors li.syncerror', { hasText: `${APP} did not follow ImagingStudy-open` }).waitFor();
  // The app that refused speaks of itself as "you", not by its name.
  await app.locator('#syncerrors li.syncerror', { hasText: 'You did not follow ImagingStudy-open; the other apps were told' }).waitFor();
  assert.doesNotMatch(await app.locator('#syncerrors').textContent(), new RegExp(APP.replace(/[()]/g, '\\$&')));
  await row.locator('td.bad', { hasText: 'refused ImagingStudy-open after asking' }).waitFor();
  assert.equal(await app.locator('#study').textContent(), '—', 'the app kept what it showed');

  // Next time the user discards the work: the app follows.
  await ehr.locator('[data-open="ImagingStudy/st-ada-xr"]').click();
  await dialog.waitFor();
  await dialog.locator('button[value=yes]').click();
  await app.locator('#study', { hasText: 'Chest X-ray, 2 views' }).waitFor();
  await inSync(app);
  assert.deepEqual(env.errors, []);
});
