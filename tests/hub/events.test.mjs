// Event requests against the hub in workerd: acceptance, fan-out, names, staleness, duplicate
// ids, derived opens and closes, Home-open and UserLogout.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startHub, patient, encounter, study, report, parameters, uid } from './harness.mjs';

let hub;
before(async () => (hub = await startHub()));
after(async () => hub?.stop());

const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

test('req58 req59 req60 req76 req77 req78 req80 req138: an accepted event is answered 2xx, then broadcast to every subscriber of it, requester included, with the same id', async () => {
  const topic = uid();
  const requester = await hub.join('Patient-open', { topic, name: 'requester' });
  const other = await hub.join('patient-open,Patient-close', { topic, name: 'other' });
  const bystander = await hub.join('Patient-close,Encounter-open', { topic, name: 'bystander' });
  const ev = hub.event('Patient-open', [patient('p1', { name: [{ family: 'Doe' }], birthDate: '1970-01-01' })], { topic });
  const r = await hub.post(ev);
  assert.equal(r.status, 202, r.text);
  assert.match(r.headers.get('content-type'), /^application\/json/);
  assert.equal(r.json.id, ev.id);
  const v = r.json['context.versionId'];
  assert.ok(v);
  for (const s of [requester, other]) {
    const msg = await s.nextEvent('Patient-open');
    assert.deepEqual(Object.keys(msg).sort(), ['event', 'id', 'timestamp']);
    assert.equal(msg.id, ev.id, 'req 80: the requester id is reused');
    assert.equal(msg.timestamp, ev.timestamp, 'req 59: when the event occurred');
    assert.match(msg.timestamp, ISO_UTC);
    assert.deepEqual(msg.event, { 'hub.topic': topic, 'hub.event': 'Patient-open', 'context.versionId': v, context: ev.event.context });
  }
  assert.ok(await bystander.nothing(), 'req 45: subscribers of other events get nothing');
  for (const s of [requester, other, bystander]) await s.close();
});

test('req4: events are accepted as application/json and as application/fhir+json', async () => {
  const topic = uid();
  const a = await hub.join('Patient-open', { topic });
  for (const contentType of ['application/json', 'application/fhir+json; charset=utf-8']) {
    const ev = hub.event('Patient-open', [patient(uid('p'))], { topic });
    const r = await hub.post(ev, { contentType });
    assert.equal(r.status, 202, `${contentType}: ${r.text}`);
    assert.equal((await a.nextEvent('Patient-open')).id, ev.id);
  }
  await a.close();
});

test('req34 req90: event names are case-insensitive in subscriptions and in events; the broadcast uses the canonical name', async () => {
  const topic = uid();
  const a = await hub.join('PATIENT-OPEN,syncerror', { topic });
  assert.equal(a.confirmation['hub.events'], 'Patient-open,SyncError');
  const ev = hub.event('patient-OPEN', [patient('p1')], { topic });
  assert.equal((await hub.post(ev)).status, 202);
  const msg = await a.nextEvent('Patient-open');
  assert.equal(msg.id, ev.id);
  assert.equal(msg.event['hub.event'], 'Patient-open');
  const close = hub.event('PATIENT-close', [patient('p1')], { topic });
  assert.equal((await hub.post(close)).status, 202, 'the close matches the open whatever the case');
  await a.close();
});

test('req63 req64 neg14: context keys are lower case and case-sensitive: "Patient" is refused (400) and nothing is sent', async () => {
  const topic = uid();
  const a = await hub.join('Patient-open', { topic });
  const r = await hub.post(hub.event('Patient-open', [{ key: 'Patient', resource: { resourceType: 'Patient', id: 'p1' } }], { topic }));
  assert.equal(r.status, 400, r.text);
  assert.equal(r.json.resourceType, 'OperationOutcome');
  assert.match(r.text, /case-sensitive/);
  assert.ok(await a.nothing());
  assert.deepEqual((await hub.getContext(topic)).json, { 'context.type': '', context: [] });
  await a.close();
});

test('req67: a context change older than the event that set the current context is refused (409), not applied, not sent', async () => {
  const topic = uid();
  const a = await hub.join('Patient-open,Patient-close', { topic });
  const now = Date.now();
  const p1 = hub.event('Patient-open', [patient('p1')], { topic, timestamp: new Date(now).toISOString() });
  assert.equal((await hub.post(p1)).status, 202);
  await a.nextEvent('Patient-open');
  for (const ev of [
    hub.event('Patient-open', [patient('p0')], { topic, timestamp: new Date(now - 60_000).toISOString() }),
    hub.event('Patient-close', [patient('p1')], { topic, timestamp: new Date(now - 1).toISOString() }),
  ]) {
    const r = await hub.post(ev);
    assert.equal(r.status, 409, r.text);
    assert.match(r.text, /req 67/);
  }
  assert.ok(await a.nothing());
  const cur = (await hub.getContext(topic)).json;
  assert.equal(cur.context[0].resource.id, 'p1');
  // The same timestamp is not older: accepted.
  assert.equal((await hub.post(hub.event('Patient-close', [patient('p1')], { topic, timestamp: p1.timestamp }))).status, 202);
  await a.close();
});

test('req139 5a-18 req137: a retried request (same id, same event) is answered 2xx and not re-broadcast; the same id for another event is refused (409)', async () => {
  const topic = uid();
  const a = await hub.join('Patient-open', { topic });
  const ev = hub.event('Patient-open', [patient('p1')], { topic });
  const first = await hub.post(ev);
  assert.equal(first.status, 202);
  assert.equal((await a.nextEvent('Patient-open')).id, ev.id);
  const retry = await hub.post(ev);
  assert.equal(retry.status, 202, retry.text);
  assert.equal(retry.json.id, ev.id);
  assert.equal(retry.json.duplicate, true);
  assert.ok(await a.nothing(), 'a retry is not broadcast again');
  const reused = await hub.post(hub.event('Patient-open', [patient('p2')], { topic, id: ev.id }));
  assert.equal(reused.status, 409, reused.text);
  assert.match(reused.text, /already used/);
  assert.ok(await a.nothing(undefined, 300));
  assert.equal((await hub.getContext(topic)).json.context[0].resource.id, 'p1', 'the refused event changed nothing');
  await a.close();
});

test('req97 req98 req139: a DiagnosticReport-open reaches Patient-open and ImagingStudy-open subscribers as derived opens with fresh ids, without duplicates', async () => {
  const topic = uid();
  const ehr = await hub.join('Patient-open,Patient-close', { topic, name: 'EHR' });
  const pacs = await hub.join('ImagingStudy-open', { topic, name: 'PACS' });
  const reporting = await hub.join('DiagnosticReport-open,DiagnosticReport-close,Patient-open', { topic, name: 'reporting' });
  const ev = hub.event('DiagnosticReport-open', [report('r1'), patient('p1'), study('s1')], { topic });
  assert.equal((await hub.post(ev)).status, 202);
  const derived = await ehr.nextEvent('Patient-open');
  assert.notEqual(derived.id, ev.id, 'req 139: derived events get fresh ids');
  assert.equal(derived.timestamp, ev.timestamp);
  assert.equal(derived.event['hub.topic'], topic);
  assert.deepEqual(derived.event.context, [patient('p1')]);
  assert.ok(derived.event['context.versionId']);
  const studyOpen = await pacs.nextEvent('ImagingStudy-open');
  assert.deepEqual(studyOpen.event.context, [study('s1'), patient('p1')]);
  assert.notEqual(studyOpen.id, derived.id);
  assert.equal((await reporting.nextEvent('DiagnosticReport-open')).id, ev.id);
  assert.ok(await reporting.nothing(undefined, 400), 'subscribers of the source event get the source only');
  assert.ok(await ehr.nothing(undefined, 100), 'no DiagnosticReport-open to a Patient-only subscriber');
  assert.equal((await hub.getContext(topic)).json['context.type'], 'DiagnosticReport', 'the derived anchors do not become current');
  // req 98: a second report on the same patient derives no second Patient-open.
  assert.equal((await hub.post(hub.event('DiagnosticReport-open', [report('r2'), patient('p1')], { topic }))).status, 202);
  assert.ok(await ehr.nothing(), 'no duplicate Patient-open');
  // A late Patient-open subscriber gets the derived open replayed (it is recorded as open).
  const late = await hub.join('Patient-open', { topic });
  assert.equal((await late.nextEvent('Patient-open')).id, derived.id);
  for (const s of [ehr, pacs, reporting, late]) await s.close();
});

test('req97 req99: an Encounter-open implies a Patient-open; closing the source derives the close', async () => {
  const topic = uid();
  const ehr = await hub.join('Patient-open,Patient-close', { topic, name: 'EHR' });
  const enc = await hub.join('Encounter-open,Encounter-close', { topic, name: 'ENC' });
  const open = hub.event('Encounter-open', [encounter('e1', 'p1'), patient('p1')], { topic });
  assert.equal((await hub.post(open)).status, 202);
  const derivedOpen = await ehr.nextEvent('Patient-open');
  assert.deepEqual(derivedOpen.event.context, [patient('p1')]);
  await enc.nextEvent('Encounter-open');
  const close = hub.event('Encounter-close', [encounter('e1', 'p1'), patient('p1')], { topic });
  assert.equal((await hub.post(close)).status, 202);
  assert.equal((await enc.nextEvent('Encounter-close')).id, close.id);
  const derivedClose = await ehr.nextEvent('Patient-close');
  assert.notEqual(derivedClose.id, close.id);
  assert.deepEqual(derivedClose.event.context, [patient('p1')]);
  assert.equal(derivedClose.timestamp, close.timestamp);
  assert.ok(await enc.nothing(undefined, 300));
  // The derived anchor is closed with its source: a close for p1 now finds nothing open.
  assert.equal((await hub.post(hub.event('Patient-close', [patient('p1')], { topic }))).status, 409);
  await ehr.close();
  await enc.close();
});

test('req99: a derived anchor that another open context still carries is not closed with its source', async () => {
  const topic = uid();
  const ehr = await hub.join('Patient-open,Patient-close', { topic });
  await hub.post(hub.event('DiagnosticReport-open', [report('r1'), patient('p1')], { topic }));
  await ehr.nextEvent('Patient-open');
  await hub.post(hub.event('DiagnosticReport-open', [report('r2'), patient('p1')], { topic }));
  assert.equal((await hub.post(hub.event('DiagnosticReport-close', [report('r1'), patient('p1')], { topic }))).status, 202);
  assert.ok(await ehr.nothing(), 'r2 still shows p1');
  assert.equal((await hub.post(hub.event('DiagnosticReport-close', [report('r2'), patient('p1')], { topic }))).status, 202);
  assert.deepEqual((await ehr.nextEvent('Patient-close')).event.context, [patient('p1')]);
  await ehr.close();
});

test('req128 5a-19: Home-open (empty context) clears the current context and closes nothing', async () => {
  const topic = uid();
  const a = await hub.join('Patient-open,Home-open', { topic });
  const open = hub.event('Patient-open', [patient('p1')], { topic });
  const opened = await hub.post(open);
  await a.nextEvent('Patient-open');
  const home = hub.event('Home-open', [], { topic });
  const r = await hub.post(home);
  assert.equal(r.status, 202, r.text);
  const msg = await a.nextEvent('Home-open');
  assert.equal(msg.id, home.id);
  assert.deepEqual(msg.event, { 'hub.topic': topic, 'hub.event': 'Home-open', context: [] });
  assert.deepEqual((await hub.getContext(topic)).json, { 'context.type': '', context: [] });
  const b = await hub.join('Patient-open', { topic });
  assert.ok(await b.nothing(), '5a-9: no replay without a current context');
  // p1 is still open: re-opening it keeps its version (req 108, 125) ...
  const again = await hub.post(hub.event('Patient-open', [patient('p1')], { topic }));
  assert.equal(again.json['context.versionId'], opened.json['context.versionId']);
  // ... and closing it is accepted.
  assert.equal((await hub.post(hub.event('Patient-close', [patient('p1')], { topic }))).status, 202);
  await a.close();
  await b.close();
});

test('5a-19 req130: UserLogout closes every context and is broadcast to its subscribers', async () => {
  const topic = uid();
  const a = await hub.join('UserLogout', { topic });
  await hub.post(hub.event('Patient-open', [patient('p1')], { topic }));
  await hub.post(hub.event('Encounter-open', [encounter('e1', 'p1'), patient('p1')], { topic }));
  const logout = hub.event('UserLogout', [parameters('user-initiated')], { topic });
  assert.equal((await hub.post(logout)).status, 202);
  const msg = await a.nextEvent('UserLogout');
  assert.equal(msg.id, logout.id);
  assert.deepEqual(msg.event.context, logout.event.context);
  assert.deepEqual((await hub.getContext(topic)).json, { 'context.type': '', context: [] });
  for (const ev of [hub.event('Patient-close', [patient('p1')], { topic }), hub.event('Encounter-close', [encounter('e1', 'p1'), patient('p1')], { topic })]) {
    assert.equal((await hub.post(ev)).status, 409, 'nothing is open any more');
  }
  await a.close();
});

test('req69: an extension entry (a JSON object under data) is forwarded as sent; a non-object is refused (400)', async () => {
  const topic = uid();
  const a = await hub.join('Patient-open', { topic });
  const ext = { key: 'extension', data: { 'user-timezone': '+1:00', nested: { list: [1, 2] } } };
  const ev = hub.event('Patient-open', [patient('p1'), ext], { topic });
  assert.equal((await hub.post(ev)).status, 202);
  assert.deepEqual((await a.nextEvent('Patient-open')).event.context, [patient('p1'), ext]);
  const bad = await hub.post(hub.event('Patient-open', [patient('p2'), { key: 'extension', data: 'not an object' }], { topic }));
  assert.equal(bad.status, 400, bad.text);
  assert.ok(await a.nothing());
  await a.close();
});

test('req131: UserHibernate is forwarded to its subscribers and changes no context', async () => {
  const topic = uid();
  const a = await hub.join('UserHibernate', { topic });
  await hub.post(hub.event('Patient-open', [patient('p1')], { topic }));
  const before = (await hub.getContext(topic)).json;
  const ctx = [{ key: 'parameters', resource: { resourceType: 'Parameters', parameter: [{ name: 'code', valueCoding: { system: 'http://fhircast.hl7.org/CodeSystem/fhircast-codesystem', code: 'system-timeout' } }, { name: 'hub', valueBoolean: true }] } }];
  const ev = hub.event('UserHibernate', ctx, { topic });
  assert.equal((await hub.post(ev)).status, 202);
  const msg = await a.nextEvent('UserHibernate');
  assert.equal(msg.id, ev.id);
  assert.deepEqual(msg.event.context, ctx);
  assert.deepEqual((await hub.getContext(topic)).json, before);
  await a.close();
});

test('req134 req135: a generic <Resource>-open/close and a reverse-domain proprietary event are accepted and forwarded', async () => {
  const topic = uid();
  const a = await hub.join('MedicationRequest-open,MedicationRequest-close,org.example.thing', { topic });
  assert.equal(a.confirmation['hub.events'], 'MedicationRequest-open,MedicationRequest-close,org.example.thing');
  const med = { key: 'medicationrequest', resource: { resourceType: 'MedicationRequest', id: 'm1' } };
  const open = hub.event('MedicationRequest-open', [med, patient('p1')], { topic });
  const r = await hub.post(open);
  assert.equal(r.status, 202, r.text);
  assert.equal((await a.nextEvent('MedicationRequest-open')).id, open.id);
  assert.equal((await hub.getContext(topic)).json['context.type'], 'MedicationRequest');
  const custom = hub.event('org.example.thing', [{ key: 'anything', string: 'custom payload' }], { topic });
  assert.equal((await hub.post(custom)).status, 202);
  assert.deepEqual((await a.nextEvent('org.example.thing')).event.context, custom.event.context);
  assert.equal((await hub.post(hub.event('MedicationRequest-close', [med], { topic }))).status, 202);
  assert.deepEqual((await hub.getContext(topic)).json, { 'context.type': '', context: [] });
  await a.close();
});

test('req59 5a-23: a timestamp without a zone is read as UTC and sent on in RFC 3339 with Z; a malformed one is refused (400)', async () => {
  const topic = uid();
  const a = await hub.join('Patient-open', { topic });
  // Now (within MAX_CLOCK_AHEAD_SECONDS of the hub's clock), without its zone and with two
  // fractional digits.
  const iso = new Date(Date.now() + 1000).toISOString();
  const ev = hub.event('Patient-open', [patient('p1')], { topic, timestamp: iso.slice(0, 22) });
  assert.equal((await hub.post(ev)).status, 202);
  assert.equal((await a.nextEvent('Patient-open')).timestamp, `${iso.slice(0, 22)}0Z`);
  const bad = await hub.post(hub.event('Patient-open', [patient('p2')], { topic, timestamp: `${iso.slice(0, 11)}0${iso.slice(11, 22)}` }));
  assert.equal(bad.status, 400, bad.text);
  assert.match(bad.text, /timestamp/);
  assert.ok(await a.nothing());
  await a.close();
});
