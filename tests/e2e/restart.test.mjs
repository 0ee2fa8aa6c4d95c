// The hub's workerd process stops and starts again: every app shows that the connection was
// lost, then recovers by itself and shows the right context (req 48). UserLogout clears every
// app (req 129-130).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setup, embedded, inSync, sleep } from './harness.mjs';

let env;
before(async () => (env = await setup()));
after(async () => env?.teardown());

/** The EHR, its embedded app, the viewer and a report window on one session, all in sync. */
async function everyApp() {
  await env.fresh();
  const ehr = await env.ehr();
  const viewer = await env.app('/viewer/');
  const report = await env.app('/report/');
  return { ehr, viewer, report, banners: [ehr, embedded(ehr), viewer, report] };
}

/** Records the page client's status and context changes (shown if an expectation fails). */
function record() {
  window.__history = [];
  const t0 = Date.now();
  client.onStatusChange((s) => __history.push([Date.now() - t0, s.state, s.reason?.kind ?? '']));
  client.onContextChange((c) => __history.push([Date.now() - t0, 'context', c?.anchor ?? null, c?.eventId ?? '']));
}

/** Waits until `selector` shows `text`; on failure, says what the page's client went through. */
async function expectText(pageOrFrame, selector, text) {
  try {
    await pageOrFrame.locator(selector, { hasText: text }).waitFor({ timeout: 10000 });
  } catch (e) {
    const shown = await pageOrFrame.locator(selector).textContent();
    const history = await pageOrFrame.locator('body').evaluate(() => window.__history).catch(() => undefined);
    throw new Error(`${selector} shows ${JSON.stringify(shown)}, not ${JSON.stringify(text)}; history: ${JSON.stringify(history)}`);
  }
}

test('hub restarted: every app shows the lost connection, then recovers with the right context', async () => {
  const { ehr, viewer, report, banners } = await everyApp();
  await ehr.locator('[data-open="ImagingStudy/st-alan-mr"]').click();
  await viewer.locator('#study', { hasText: 'MRI brain without contrast' }).waitFor();
  await report.locator('#context', { hasText: 'Turing, Alan' }).waitFor();

  for (const p of [ehr, ehr.frame({ url: /\/embedded\// }), viewer, report]) await p.evaluate(record);
  await env.hub.kill();
  for (const b of banners) await inSync(b, { state: 'disconnected' });
  for (const b of banners) assert.match(await b.locator('#banner').textContent(), /Connection to the hub lost/);
  await ehr.locator('#subscribers', { hasText: 'the hub cannot be reached' }).waitFor();
  await env.shot(ehr, 'ehr-disconnected');
  await sleep(500);
  await env.hub.start();

  for (const b of banners) await inSync(b, { timeout: 30000 });
  // What each app shows once back in sync (waited for: the SDK reports the status and the
  // context in separate callbacks).
  await expectText(viewer, '#study', 'MRI brain without contrast');
  await expectText(embedded(ehr), '#patient', 'Turing, Alan');
  await expectText(report, '#context', 'Turing, Alan · MRI brain without contrast');
  // Following again: a change after the restart reaches everyone.
  await ehr.locator('[data-open="Patient/pat-grace"]').click();
  await viewer.locator('#patient', { hasText: 'Hopper, Grace' }).waitFor();
  await embedded(ehr).locator('#patient', { hasText: 'Hopper, Grace' }).waitFor();
  await report.locator('#context', { hasText: 'Hopper, Grace' }).waitFor();
  // The panel lists the apps' new subscriptions, all connected.
  await ehr.locator('#subscribers tr[data-name^="Report app"] td', { hasText: /^connected$/ }).waitFor();
  assert.deepEqual(env.errors, []);
});

test('UserLogout in the EHR clears every app', async () => {
  const { ehr, viewer, report } = await everyApp();
  await ehr.locator('[data-open="ImagingStudy/st-ada-ct"]').click();
  await report.locator('#reports button[data-study="st-ada-ct"]').click();
  await report.locator('#editor').waitFor();
  await viewer.locator('#patient', { hasText: 'Lovelace, Ada' }).waitFor();
  assert.equal(await ehr.locator('#tabs li[data-anchor]').count(), 2);

  await ehr.locator('#logout').click();
  await viewer.locator('#patient', { hasText: 'No patient' }).waitFor();
  assert.equal(await viewer.locator('#images .tile').count(), 0);
  await embedded(ehr).locator('#patient', { hasText: '—' }).waitFor();
  assert.equal(await embedded(ehr).locator('#study').textContent(), '—');
  await report.locator('#context', { hasText: 'Nothing open' }).waitFor();
  assert.ok(await report.locator('#editor').isHidden());
  await ehr.locator('#tabs li.empty').waitFor();
  assert.equal(await ehr.locator('#tabs li[data-anchor]').count(), 0);
  // The log names the event, and nothing undefined (issue 15: it read "UserLogout undefined").
  const line = await ehr.locator('#log li').first().textContent();
  assert.match(line, / UserLogout$/);
  assert.doesNotMatch(line, /undefined/);
  // The hub agrees: nothing is open.
  const current = await (await fetch(`${env.origin}/api/hub/${env.topic}`)).json();
  assert.deepEqual(current.context, []);
  await env.shot(viewer, 'viewer-logout');
  assert.deepEqual(env.errors, []);
});

test('two report windows are two rows the EHR can tell apart, each window titled with its name', async () => {
  await env.fresh();
  const ehr = await env.ehr();
  const first = await env.app('/report/');
  const second = await env.app('/report/');
  const names = [await first.title(), await second.title()];
  assert.deepEqual(names, ['Report app 1', 'Report app 2'], 'numbered in the order they opened');
  for (const n of names) await ehr.locator(`#subscribers tr[data-name="${n}"]`).waitFor();
  assert.equal(await first.locator('h1').textContent(), names[0]);
  assert.deepEqual(env.errors, []);
});

