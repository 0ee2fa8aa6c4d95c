// The report app: content sharing between two windows (req 107-121). A report opened in one is
// opened in the other; a finding added, removed or selected in one appears in the other, with
// the report's new version.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setup, watchText } from './harness.mjs';

let env;
before(async () => (env = await setup()));
after(async () => env?.teardown());

const findings = (page) => page.locator('#observations li[data-id]').evaluateAll((l) => l.map((li) => li.querySelector('button').textContent));
const version = (page) => page.locator('#version').textContent();
/** Waits until `page` shows exactly version `v`. */
const showsVersion = (page, v) => page.locator('#version', { hasText: new RegExp(`^${v}$`) }).waitFor();

test('a report update in one window appears with the new version in the other', async () => {
  await env.fresh();
  const ehr = await env.ehr();
  const [a, b] = [await env.app('/report/'), await env.app('/report/')];
  await ehr.locator('[data-open="ImagingStudy/st-ada-ct"]').click();
  await a.locator('#reports button[data-study="st-ada-ct"]').waitFor();
  await a.locator('#reports button[data-study="st-ada-ct"]').click();
  for (const p of [a, b]) await p.locator('#title', { hasText: 'Report: CT chest with contrast' }).waitFor();
  const v1 = await version(a);
  assert.notEqual(v1, '—');
  assert.equal(await version(b), v1);
  // The EHR shows the report as another open context.
  await ehr.locator('#tabs li.current[data-anchor="DiagnosticReport/rep-st-ada-ct"]').waitFor();

  // Add a finding in A: B shows it, at the version A reached.
  const seen = await watchText(b, '#observations', '4 mm nodule, right upper lobe');
  await a.locator('#finding').fill('4 mm nodule, right upper lobe');
  await a.locator('#add button').click();
  await seen.seenAt();
  await a.locator('#version').filter({ hasNotText: v1 }).waitFor();
  const v2 = await version(a);
  await showsVersion(b, v2);
  assert.deepEqual(await findings(b), ['4 mm nodule, right upper lobe']);

  // And the other way: B adds one, A sees both.
  await b.locator('#finding').fill('No pleural effusion');
  await b.locator('#add button').click();
  await a.locator('#observations', { hasText: 'No pleural effusion' }).waitFor();
  await b.locator('#version').filter({ hasNotText: v2 }).waitFor();
  const v3 = await version(b);
  await showsVersion(a, v3);
  assert.deepEqual(await findings(a), ['4 mm nodule, right upper lobe', 'No pleural effusion']);

  // Select in A: B highlights it (DiagnosticReport-select).
  await a.locator('#observations li', { hasText: '4 mm nodule' }).locator('button.link').click();
  await b.locator('#observations li.selected', { hasText: '4 mm nodule' }).waitFor();
  await env.shot(b, 'report');

  // Remove in B: gone in A, new version.
  await b.locator('#observations li', { hasText: 'No pleural effusion' }).locator('button.remove').click();
  await a.locator('#observations li', { hasText: 'No pleural effusion' }).waitFor({ state: 'detached' });
  await b.locator('#version').filter({ hasNotText: v3 }).waitFor();
  const v4 = await version(b);
  await showsVersion(a, v4);
  assert.deepEqual(await findings(a), ['4 mm nodule, right upper lobe']);

  // A window opened later reads the content from the hub (get current context, req 105).
  const c = await env.app('/report/');
  await showsVersion(c, v4);
  assert.deepEqual(await findings(c), ['4 mm nodule, right upper lobe']);

  // Closing the report closes it everywhere.
  await a.locator('#close-report').click();
  for (const p of [a, b, c]) await p.locator('#editor').waitFor({ state: 'hidden' });
  assert.deepEqual(env.errors, []);
});
