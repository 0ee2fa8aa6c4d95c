// Multiple open contexts (multi-tab) and Get Current Context against the hub in workerd
// (req 100-106, 122-128; neg 19, §5a-7, §5a-20).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startHub, patient, encounter, report, uid } from './harness.mjs';

let hub;
before(async () => (hub = await startHub()));
after(async () => hub?.stop());

const EMPTY = { 'context.type': '', context: [] };
const NO_CONTENT = { key: 'content', resource: { resourceType: 'Bundle', type: 'collection' } };

test('req100 req11 req12 req14 neg26: the well-known document advertises Get Current Context and non-current updates', async () => {
  const r = await hub.request('/.well-known/fhircast-configuration');
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type'), /^application\/json/);
  assert.equal(r.json.capabilities.supportsGetCurrentContext, true);
  assert.equal(r.json.getCurrentSupport, true);
  assert.equal(r.json.capabilities.supportsNonCurrentContextUpdates, true);
  assert.equal(r.json.websocketSupport, true);
  assert.equal(r.json.fhircastVersion, '3.0.0');
  assert.ok(r.json.eventsSupported.includes('DiagnosticReport-update'));
});

test('req101 req103 5a-7 neg25: GET {hub.url}/{topic} of a topic with no context returns the empty form, without context.versionId', async () => {
  const r = await hub.getContext(uid());
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type'), /^application\/json/);
  assert.deepEqual(r.json, EMPTY);
});

test('req122 req123 req124 req102 req104 req105 req106 req108 req125 req68: open, open, re-open, close non-current, close current — GET after each step', async () => {
  const topic = uid();
  const a = await hub.join('Patient-open,Patient-close', { topic });
  const p1 = patient('p1', { name: [{ family: 'One', given: ['Pat'] }], birthDate: '1970-01-01', gender: 'female' });
  const p2 = patient('p2', { name: [{ family: 'Two' }], extension: [{ url: 'http://example.org/x', valueString: 'kept as sent' }] });

  const open1 = await hub.post(hub.event('Patient-open', [p1], { topic }));
  const v1 = open1.json['context.versionId'];
  assert.deepEqual((await hub.getContext(topic)).json, { 'context.type': 'Patient', 'context.versionId': v1, context: [p1, NO_CONTENT] });

  // A second open makes the new context current; the first stays open (req 123).
  const open2 = await hub.post(hub.event('Patient-open', [p2], { topic }));
  const v2 = open2.json['context.versionId'];
  assert.notEqual(v2, v1, 'req 108: each anchor has its own version');
  assert.deepEqual((await hub.getContext(topic)).json, { 'context.type': 'Patient', 'context.versionId': v2, context: [p2, NO_CONTENT] });

  // Re-opening an open context makes it current again, keeps its version, closes nothing;
  // its context is replaced by the new open's, as sent (req 68: opens are not deltas).
  const p1b = patient('p1', { name: [{ family: 'One-Renamed' }] });
  const reopen = await hub.post(hub.event('Patient-open', [p1b], { topic }));
  assert.equal(reopen.json['context.versionId'], v1);
  assert.deepEqual((await hub.getContext(topic)).json, { 'context.type': 'Patient', 'context.versionId': v1, context: [p1b, NO_CONTENT] });

  // Closing a non-current context removes only that one (req 124).
  assert.equal((await hub.post(hub.event('Patient-close', [patient('p2')], { topic }))).status, 202);
  assert.deepEqual((await hub.getContext(topic)).json, { 'context.type': 'Patient', 'context.versionId': v1, context: [p1b, NO_CONTENT] });

  // Closing the current context leaves none (req 104, 124).
  assert.equal((await hub.post(hub.event('Patient-close', [patient('p1')], { topic }))).status, 202);
  assert.deepEqual((await hub.getContext(topic)).json, EMPTY);
  const names = a.all.filter((m) => m.event).map((m) => `${m.event['hub.event']} ${m.event.context[0].resource.id}`);
  assert.deepEqual(names, ['Patient-open p1', 'Patient-open p2', 'Patient-open p1', 'Patient-close p2', 'Patient-close p1']);
  await a.close();
});

test('req104 req124 5a-9: closing the current context does not fall back to an older open context', async () => {
  const topic = uid();
  await hub.post(hub.event('Patient-open', [patient('p1')], { topic }));
  await hub.post(hub.event('Encounter-open', [encounter('e1', 'p1'), patient('p1')], { topic }));
  await hub.post(hub.event('Patient-open', [patient('p2')], { topic }));
  assert.equal((await hub.post(hub.event('Patient-close', [patient('p2')], { topic }))).status, 202);
  assert.deepEqual((await hub.getContext(topic)).json, EMPTY, 'neither p1 nor e1 becomes current');
  // Both are still open: closing them is accepted.
  assert.equal((await hub.post(hub.event('Encounter-close', [encounter('e1', 'p1'), patient('p1')], { topic }))).status, 202);
  assert.equal((await hub.post(hub.event('Patient-close', [patient('p1')], { topic }))).status, 202);
});

test('req3 req62 req65 req102 req106: GET returns the context array of the open exactly as sent, all keys, for a DiagnosticReport anchor', async () => {
  const topic = uid();
  const ctx = [
    report('r1', { identifier: [{ system: 'urn:acsn', value: 'A1' }], subject: { reference: 'Patient/p1' } }),
    patient('p1'),
    encounter('e1', 'p1'),
    { key: 'study', resource: { resourceType: 'ImagingStudy', id: 's1', identifier: [{ system: 'urn:dicom:uid', value: 'urn:oid:1.2.3' }] } },
    { key: 'study', resource: { resourceType: 'ImagingStudy', id: 's2' } },
  ];
  const r = await hub.post(hub.event('DiagnosticReport-open', ctx, { topic }));
  assert.equal(r.status, 202, r.text);
  const got = (await hub.getContext(topic)).json;
  assert.equal(got['context.type'], 'DiagnosticReport');
  assert.equal(got['context.versionId'], r.json['context.versionId']);
  assert.deepEqual(got.context, [...ctx, NO_CONTENT]);
  assert.equal(got.context.filter((c) => c.key === 'content').length, 1, 'req 105: exactly one content entry');
});

test('neg19 5a-20 req126: closing a context that is not open (or with ids that match no open context) is refused with 409; nothing is sent or changed', async () => {
  const topic = uid();
  const a = await hub.join('Patient-close,Encounter-close', { topic });
  const never = await hub.post(hub.event('Patient-close', [patient('p9')], { topic }));
  assert.equal(never.status, 409, never.text);
  assert.equal(never.json.resourceType, 'OperationOutcome');
  assert.match(never.text, /not an open context/);
  const open = await hub.post(hub.event('Encounter-open', [encounter('e1', 'p1'), patient('p1')], { topic }));
  const before = (await hub.getContext(topic)).json;
  const mismatched = await hub.post(hub.event('Encounter-close', [encounter('e2', 'p1'), patient('p1')], { topic }));
  assert.equal(mismatched.status, 409, 'req 126: the close must name the id of the open');
  assert.deepEqual((await hub.getContext(topic)).json, before);
  assert.equal(before['context.versionId'], open.json['context.versionId']);
  assert.ok(await a.nothing());
  // A second close of the same context is refused too (closes are not idempotent here).
  const close = hub.event('Encounter-close', [encounter('e1', 'p1'), patient('p1')], { topic });
  assert.equal((await hub.post(close)).status, 202);
  assert.equal((await a.nextEvent('Encounter-close')).id, close.id);
  assert.equal((await hub.post(hub.event('Encounter-close', [encounter('e1', 'p1'), patient('p1')], { topic }))).status, 409);
  assert.ok(await a.nothing(undefined, 300));
  await a.close();
});
