// The examples, driven as a user would: the landing page, the EHR's worklist and tabs, and the
// embedded app and the standalone viewer following it; the EHR's subscriber panel.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setup, embedded, inSync, watchText, clickAt } from './harness.mjs';

let env;
before(async () => (env = await setup()));
after(async () => env?.teardown());

test('the landing page links the EHR and the apps to one fresh session; the SDK is served as its npm package', async () => {
  const landing = await env.open('/');
  const ehrHref = await landing.locator('#ehr').getAttribute('href');
  const topic = new URL(ehrHref, env.origin).searchParams.get('topic');
  assert.match(topic, /^session-[0-9a-f]{16}$/);
  const viewer = new URL(await landing.locator('#viewer').getAttribute('href'), env.origin);
  assert.equal(viewer.pathname, '/viewer/');
  assert.equal(viewer.searchParams.get('hub.topic'), topic);
  assert.equal(viewer.searchParams.get('hub.url'), `${env.origin}/api/hub`);
  const report = new URL(await landing.locator('#report').getAttribute('href'), env.origin);
  assert.equal(report.searchParams.get('hub.topic'), topic);
  await env.shot(landing, 'landing');
  // Another visit, another session.
  await landing.reload();
  assert.notEqual(new URL(await landing.locator('#ehr').getAttribute('href'), env.origin).searchParams.get('topic'), topic);
  // A session chosen in the URL is kept.
  await landing.goto(`${env.origin}/?topic=my-session`);
  assert.equal(await landing.locator('#ehr').getAttribute('href'), '/ehr/?topic=my-session');
  // The EHR without a topic makes one and shows it in its URL.
  const ehr = await env.open('/ehr/');
  await inSync(ehr);
  assert.match(new URL(ehr.url()).searchParams.get('topic'), /^session-[0-9a-f]{16}$/);
  await ehr.close();
  // The package as `npm install fhircast-sdk` gives it.
  for (const [path, type] of [
    ['/fhircast-sdk/pkg/index.js', /javascript/],
    ['/fhircast-sdk/index.d.ts', /./],
    ['/fhircast-sdk/pkg/fhircast_sdk_bg.wasm', /^application\/wasm/],
  ]) {
    const r = await fetch(`${env.origin}${path}`);
    assert.equal(r.status, 200, path);
    assert.match(r.headers.get('content-type'), type, path);
  }
  // The hub is still the hub on the same origin.
  assert.equal((await fetch(`${env.origin}/api/hub/.well-known/fhircast-configuration`)).status, 200);
});

test('issue13: a launch URL that names a hub on another origin does not get the access_token in it', async () => {
  const page = await env.open('/');
  const launch = (query) =>
    page.evaluate(async (q) => {
      history.replaceState(null, '', `/?${q}`);
      const { launchParameters } = await import('/lib/launch.js');
      return launchParameters();
    }, query);
  const crafted = await launch('hub.url=https%3A%2F%2Fattacker.example%2Fapi%2Fhub&hub.topic=t1&access_token=secret');
  assert.equal(crafted['hub.url'], 'https://attacker.example/api/hub');
  assert.equal(crafted.access_token, undefined, 'the token is not handed to another host');
  const own = await launch(`hub.url=${encodeURIComponent(`${env.origin}/api/hub`)}&hub.topic=t1&access_token=secret`);
  assert.equal(own.access_token, 'secret', 'the hub served with the page gets it');
  await page.close();
});

test('opening a patient in the EHR: the embedded app and the viewer show that patient within 1 s', async () => {
  await env.fresh();
  const ehr = await env.ehr();
  const viewer = await env.app('/viewer/');
  const frame = ehr.frame({ url: /\/embedded\// });
  const inFrame = await watchText(frame, '#patient', 'Lovelace, Ada');
  const inViewer = await watchText(viewer, '#patient', 'Lovelace, Ada');
  const clicked = await clickAt(ehr, ehr.locator('[data-open="Patient/pat-ada"]'));
  const [a, b] = [(await inFrame.seenAt()) - clicked, (await inViewer.seenAt()) - clicked];
  console.log(`# click in the EHR -> patient shown: embedded app ${a} ms, viewer ${b} ms`);
  assert.ok(a <= 1000 && b <= 1000, `within 1 s: embedded ${a} ms, viewer ${b} ms`);
  assert.equal(await embedded(ehr).locator('#mrn').textContent(), 'MRN-1001');
  assert.equal(await viewer.locator('#mrn').textContent(), 'MRN-1001');

  // A study of another patient: a second tab, now current; both apps follow.
  await ehr.locator('[data-open="ImagingStudy/st-alan-mr"]').click();
  await viewer.locator('#study', { hasText: 'MRI brain without contrast' }).waitFor();
  assert.equal(await viewer.locator('#patient').textContent(), 'Turing, Alan');
  assert.equal(await viewer.locator('#images .tile').count(), 4);
  await embedded(ehr).locator('#study', { hasText: 'MRI brain without contrast' }).waitFor();
  await ehr.locator('#tabs li.current[data-anchor="ImagingStudy/st-alan-mr"]').waitFor();
  assert.deepEqual(await ehr.locator('#tabs li[data-anchor]').evaluateAll((l) => l.map((li) => li.dataset.anchor)), ['Patient/pat-ada', 'ImagingStudy/st-alan-mr']);
  // One tab per patient (issue 15): Ada's and Alan's.
  assert.deepEqual(await ehr.locator('#tabs > li.patient').evaluateAll((l) => l.map((li) => li.dataset.patient)), ['Patient/pat-ada', 'Patient/pat-alan']);
  await env.shot(viewer, 'viewer');

  // Back to the first tab: it is current again, and the apps show Ada again.
  await ehr.locator('#tabs li[data-anchor="Patient/pat-ada"] .tab').click();
  await ehr.locator('#tabs li.current[data-anchor="Patient/pat-ada"]').waitFor();
  await viewer.locator('#patient', { hasText: 'Lovelace, Ada' }).waitFor();
  assert.equal(await viewer.locator('#study').textContent(), 'No study open');

  // The panel: every subscriber, connected, and what it last answered.
  const row = (name) => ehr.locator(`#subscribers tr[data-name="${name}"]`);
  await row('Image viewer').locator('td', { hasText: 'followed Patient-open' }).waitFor();
  await row('Patient summary (embedded)').locator('td', { hasText: 'followed Patient-open' }).waitFor();
  assert.equal(await row('EHR').locator('td').nth(1).textContent(), 'connected');
  await env.shot(ehr, 'ehr');

  // Closing the current tab leaves the other one open but no current context (req 124).
  await ehr.locator('#tabs li[data-anchor="Patient/pat-ada"] .close').click();
  await viewer.locator('#patient', { hasText: 'No patient' }).waitFor();
  assert.deepEqual(await ehr.locator('#tabs li[data-anchor]').evaluateAll((l) => l.map((li) => [li.dataset.anchor, li.className])), [['ImagingStudy/st-alan-mr', '']]);
  // Picking it makes it current again.
  await ehr.locator('#tabs li[data-anchor="ImagingStudy/st-alan-mr"] .tab').click();
  await viewer.locator('#patient', { hasText: 'Turing, Alan' }).waitFor();
  await ehr.locator('#tabs li.current[data-anchor="ImagingStudy/st-alan-mr"]').waitFor();
  // Closing the last: nothing open anywhere.
  await ehr.locator('#tabs li[data-anchor="ImagingStudy/st-alan-mr"] .close').click();
  await viewer.locator('#patient', { hasText: 'No patient' }).waitFor();
  await embedded(ehr).locator('#patient', { hasText: '—' }).waitFor();
  assert.deepEqual(env.errors, []);
});

test("EHR: one patient is one tab (issue 15): the patient's chart, study and report are items in it; × on the tab closes them all, most specific first", async () => {
  await env.fresh();
  const ehr = await env.ehr();
  await ehr.locator('[data-open="Patient/pat-ada"]').click();
  await ehr.locator('#tabs li.current[data-anchor="Patient/pat-ada"]').waitFor();
  await ehr.locator('[data-open="ImagingStudy/st-ada-ct"]').click();
  await ehr.locator('#tabs li.current[data-anchor="ImagingStudy/st-ada-ct"]').waitFor();
  await ehr.locator('[data-open="ImagingStudy/st-ada-xr"]').click();
  await ehr.locator('#tabs li.current[data-anchor="ImagingStudy/st-ada-xr"]').waitFor();
  // One tab for Ada, holding her chart and her two studies; it is the current one.
  assert.deepEqual(await ehr.locator('#tabs > li.patient').evaluateAll((l) => l.map((li) => [li.dataset.patient, li.classList.contains('current')])), [['Patient/pat-ada', true]]);
  assert.deepEqual(await ehr.locator('#tabs > li.patient .items .tab').allTextContents(), ['chart', 'CT chest with contrast', 'Chest X-ray, 2 views']);
  // Back to the CT: an item of the same tab becomes current.
  await ehr.locator('#tabs li[data-anchor="ImagingStudy/st-ada-ct"] .tab').click();
  await ehr.locator('#tabs li.current[data-anchor="ImagingStudy/st-ada-ct"]').waitFor();
  await embedded(ehr).locator('#study', { hasText: 'CT chest with contrast' }).waitFor();
  // × on the tab: everything of Ada's closes; nothing is open anywhere.
  await ehr.locator('#tabs > li.patient .close-all').click();
  await ehr.locator('#tabs li.empty').waitFor();
  await embedded(ehr).locator('#patient', { hasText: '—' }).waitFor();
  assert.deepEqual(env.errors, []);
});
