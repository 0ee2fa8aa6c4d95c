// Subscription, confirmation, replay and fan-out against the hub running in workerd.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { startHub, patient, encounter, study, report, reportRef, bundle, observationPut, uid } from './harness.mjs';

let hub;
before(async () => (hub = await startHub()));
after(async () => hub?.stop());

test('req40 req42 req43: subscribe answers 202 with an endpoint; the socket gets a confirmation', async () => {
  const topic = uid();
  const r = await hub.subscribe({ topic, events: 'patient-open,Patient-close', name: 'EHR', lease: 120 });
  assert.equal(r.status, 202);
  assert.match(r.headers.get('content-type'), /^application\/json/);
  assert.match(r.json['hub.channel.endpoint'], /^ws:\/\/127\.0\.0\.1:\d+\/api\/hub\/ws\//);
  const s = await hub.join('patient-open,Patient-close', { topic, name: 'EHR', lease: 120 });
  assert.deepEqual(s.confirmation, { 'hub.mode': 'subscribe', 'hub.topic': topic, 'hub.events': 'Patient-open,Patient-close', 'hub.lease_seconds': 120 });
  await s.close();
});

test('req41: endpoints are unguessable (>= 128 random bits) and unique', async () => {
  const topic = uid();
  const seen = new Set();
  for (let i = 0; i < 5; i++) {
    const r = await hub.subscribe({ topic, events: 'Patient-open' });
    const token = r.json['hub.channel.endpoint'].split('/').pop();
    assert.match(token, /^[0-9a-f]{32,}$/);
    seen.add(token);
  }
  assert.equal(seen.size, 5);
});

test('req44 req80: replay of the current context, then fan-out with the requester id', async () => {
  const topic = uid();
  const ev = hub.event('Patient-open', [patient('p1')], { topic, id: 'open-1' });
  const posted = await hub.post(ev);
  assert.equal(posted.status, 202, posted.text);
  const a = await hub.join('Patient-open', { topic, name: 'A' });
  const replay = await a.nextEvent('Patient-open');
  assert.equal(replay.id, 'open-1');
  assert.equal(replay.timestamp, ev.timestamp, 'req 44: the original timestamp');
  const b = await hub.join('Patient-open', { topic, name: 'B' });
  await b.nextEvent('Patient-open');
  const c = await hub.join('Patient-close', { topic, name: 'C' });
  await hub.post(hub.event('Patient-open', [patient('p2')], { topic, id: 'open-2' }));
  assert.equal((await a.nextEvent('Patient-open')).id, 'open-2');
  assert.equal((await b.nextEvent('Patient-open')).id, 'open-2');
  assert.ok(await c.nothing(), 'req 45: not to subscribers of other events');
});

test('req35 req31 5a-2: a re-subscribe with the endpoint replaces the events, renews the lease and confirms again on the same socket', async () => {
  const topic = uid();
  await hub.post(hub.event('Patient-open', [patient('p1')], { topic, id: 'p-open' }));
  await hub.post(hub.event('Encounter-open', [encounter('e1', 'p1'), patient('p1')], { topic, id: 'e-open' }));
  const joined = Date.now();
  const a = await hub.join('Patient-open', { topic, name: 'A', lease: 2 });
  assert.equal(a.confirmation['hub.lease_seconds'], 2);
  assert.equal((await a.next()).id, 'p-open', 'req 44: replay filtered by the events');
  await sleep(1000);
  const r = await hub.subscribe({ topic, events: 'Patient-open,Encounter-open,Patient-close', name: 'A', lease: 60, endpoint: a.endpoint });
  assert.equal(r.status, 202, r.text);
  assert.deepEqual(r.json, { 'hub.channel.endpoint': a.endpoint }, 'the same endpoint is kept');
  assert.deepEqual(await a.next(), { 'hub.mode': 'subscribe', 'hub.topic': topic, 'hub.events': 'Patient-open,Encounter-open,Patient-close', 'hub.lease_seconds': 60 });
  const replay = await a.next();
  assert.equal(replay.id, 'e-open', 'replay for the newly granted event only');
  assert.ok(await a.nothing(undefined, 400), 'Patient-open is not replayed twice');
  await sleep(Math.max(0, 2600 - (Date.now() - joined)));
  assert.ok(!a.all.some((m) => m['hub.mode'] === 'denied'), 'the lease was renewed: no expiry after the first 2 s');
  assert.equal(a.ws.readyState, 1);
  // A subscribe with other events replaces the list (not a union).
  const r2 = await hub.subscribe({ topic, events: 'Patient-close', endpoint: a.endpoint });
  assert.equal(r2.status, 202, r2.text);
  assert.equal((await a.next())['hub.events'], 'Patient-close');
  assert.equal((await hub.post(hub.event('Patient-open', [patient('p2')], { topic }))).status, 202);
  assert.ok(await a.nothing(), 'Patient-open was dropped from the subscription');
  const close = hub.event('Patient-close', [patient('p2')], { topic });
  assert.equal((await hub.post(close)).status, 202);
  assert.equal((await a.nextEvent('Patient-close')).id, close.id);
  await a.close();
});

test('req29 req30 req43 5a-4: the confirmation lists the granted events (canonical, no duplicates, never a superset) and the granted lease', async () => {
  const topic = uid();
  const a = await hub.join('patient-open,PATIENT-OPEN,Patient-close,patient-close', { topic, lease: 31536000 });
  assert.deepEqual(a.confirmation, { 'hub.mode': 'subscribe', 'hub.topic': topic, 'hub.events': 'Patient-open,Patient-close', 'hub.lease_seconds': 86400 });
  const b = await hub.join('DiagnosticReport-open', { topic });
  assert.deepEqual(b.confirmation, { 'hub.mode': 'subscribe', 'hub.topic': topic, 'hub.events': 'DiagnosticReport-open', 'hub.lease_seconds': 3600 }, 'req 30: the default lease');
  await a.close();
  await b.close();
});

test('5a-1 neg5 req39 5a-5: hub.events is required and must not be empty on subscribe', async () => {
  const topic = uid();
  for (const events of [undefined, '', ' , ']) {
    const r = await hub.subscribeForm({ 'hub.channel.type': 'websocket', 'hub.mode': 'subscribe', 'hub.topic': topic, 'hub.events': events });
    assert.equal(r.status, 400, `hub.events=${JSON.stringify(events)}: ${r.text}`);
    assert.match(r.headers.get('content-type'), /^text\/plain/);
    assert.match(r.text, /hub\.events/);
  }
});

test('req44 5a-9 5a-10: replay = the latest still-open open per anchor type, in opening order, filtered by events, original ids and timestamps, current versionId', async () => {
  const topic = uid();
  const all = 'Patient-open,Encounter-open,ImagingStudy-open,DiagnosticReport-open';
  const live = await hub.join(`${all},DiagnosticReport-update`, { topic, name: 'live' });
  const posts = [
    hub.event('Patient-open', [patient('p1')], { topic, id: 'o1' }),
    hub.event('Encounter-open', [encounter('e1', 'p1'), patient('p1')], { topic, id: 'o2' }),
    hub.event('ImagingStudy-open', [study('s1'), patient('p1')], { topic, id: 'o3' }),
    hub.event('DiagnosticReport-open', [report('r1'), patient('p1'), study('s1')], { topic, id: 'o4' }),
  ];
  const seen = {};
  for (const ev of posts) {
    const r = await hub.post(ev);
    assert.equal(r.status, 202, r.text);
    seen[ev.id] = await live.next((m) => m.id === ev.id);
  }
  const v1 = seen.o4.event['context.versionId'];
  const up = await hub.post(hub.event('DiagnosticReport-update', [reportRef('r1'), bundle([observationPut('obs1')])], { topic, versionId: v1 }));
  assert.equal(up.status, 202, up.text);
  const v2 = up.json['context.versionId'];
  assert.notEqual(v2, v1);
  const p2 = hub.event('Patient-open', [patient('p2')], { topic, id: 'o5' });
  await hub.post(p2);
  seen.o5 = await live.next((m) => m.id === 'o5');

  const late = await hub.join(all, { topic, name: 'late' });
  const replay = [await late.next(), await late.next(), await late.next(), await late.next()];
  assert.deepEqual(replay.map((m) => m.id), ['o2', 'o3', 'o4', 'o5'], 'p1 is superseded by p2; order of opening');
  const expected = structuredClone([seen.o2, seen.o3, seen.o4, seen.o5]);
  expected[2].event['context.versionId'] = v2;
  assert.deepEqual(replay, expected, 'exactly like the live notifications, with the current versionId');
  assert.equal(replay[3].timestamp, p2.timestamp, 'the original timestamp');
  assert.ok(await late.nothing(undefined, 300));

  const filtered = await hub.join('DiagnosticReport-open,Patient-open', { topic });
  assert.deepEqual([(await filtered.next()).id, (await filtered.next()).id], ['o4', 'o5']);
  const none = await hub.join('Patient-close,SyncError', { topic });
  assert.ok(await none.nothing(undefined, 300), 'req 45: nothing replayed that was not subscribed to');
  for (const s of [live, late, filtered, none]) await s.close();
});

test('5a-9 req104: nothing is replayed after the current context was closed, though an older context is still open', async () => {
  const topic = uid();
  await hub.post(hub.event('Patient-open', [patient('p1')], { topic }));
  await hub.post(hub.event('Patient-open', [patient('p2')], { topic }));
  assert.equal((await hub.post(hub.event('Patient-close', [patient('p2')], { topic }))).status, 202);
  assert.deepEqual((await hub.getContext(topic)).json, { 'context.type': '', context: [] });
  const a = await hub.join('Patient-open,Patient-close', { topic });
  assert.ok(await a.nothing(), 'p1 is still open but not current: not replayed');
  const p3 = hub.event('Patient-open', [patient('p3')], { topic });
  await hub.post(p3);
  assert.equal((await a.nextEvent('Patient-open')).id, p3.id);
  const b = await hub.join('Patient-open', { topic });
  assert.equal((await b.next()).id, p3.id, 'the latest open of the type only');
  assert.ok(await b.nothing(undefined, 300));
  await a.close();
  await b.close();
});

test('req45: no replay, broadcast, echo or SyncError a subscriber did not subscribe to', async () => {
  const topic = uid();
  await hub.post(hub.event('Patient-open', [patient('p1')], { topic }));
  const a = await hub.join('Encounter-open', { topic, name: 'A' });
  const refuser = await hub.join('Patient-open', { topic, name: 'R', ack: 409 });
  assert.equal((await refuser.nextEvent('Patient-open')).event.context[0].resource.id, 'p1');
  const ev = hub.event('Patient-open', [patient('p2')], { topic });
  assert.equal((await hub.post(ev)).status, 202);
  await refuser.nextEvent('Patient-open');
  assert.ok(await a.nothing(undefined, 700), 'no replay of Patient-open, no broadcast, no SyncError');
  // A subscriber that posts an event it does not subscribe to gets no echo of it.
  assert.equal((await hub.post(hub.event('Patient-close', [patient('p2')], { topic }))).status, 202);
  assert.ok(await a.nothing(undefined, 300));
  assert.ok(await refuser.nothing(undefined, 300));
  await a.close();
  await refuser.close();
});
