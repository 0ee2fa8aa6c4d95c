// Hub-generated and forwarded SyncErrors with real sockets (req 72-75, 84-96), on a hub with the
// default settings: the ack timeout is the real 10 s.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startHub, patient, syncErrorDetails, uid } from './harness.mjs';
import { closeFrame } from './wsutil.mjs';

let hub;
before(async () => (hub = await startHub()));
after(async () => hub?.stop());

const SYS = 'https://fhircast.hl7.org/events/syncerror';
const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;
const isSyncError = (m) => m.event?.['hub.event'] === 'SyncError';

/**
 * The OperationOutcome the hub builds (req 92 as seed 003 writes it): severity `information`
 * for every SyncError the hub generates; the `…/subscriber` coding, then the published
 * profile's `…/subscribername` with the same code.
 */
function hubOutcome({ eventId, eventName = 'Patient-open', subscriber, diagnostics, code = 'processing', severity = 'information' }) {
  return {
    resourceType: 'OperationOutcome',
    issue: [
      {
        severity,
        code,
        diagnostics,
        details: {
          coding: [
            { system: `${SYS}/eventid`, code: eventId },
            { system: `${SYS}/eventname`, code: eventName },
            { system: `${SYS}/subscriber`, code: subscriber },
            { system: `${SYS}/subscribername`, code: subscriber },
          ],
        },
      },
    ],
  };
}

/** Subscribes with an ack function that may use the subscriber itself (e.g. to send a custom ack). */
async function joinWith(events, opts, answer) {
  let s;
  const pending = [];
  const ack = (m) => (s ? answer(s, m) : (pending.push(m), undefined));
  s = await hub.join(events, { ...opts, ack });
  for (const m of pending) answer(s, m);
  return s;
}

test('req72 req84 req91 req92 req95 req32 req45 req88 neg21: a 409 answer sends the exact SyncError to the other SyncError subscribers, not to the refuser', async () => {
  const topic = uid();
  const refuser = await hub.join('Patient-open,SyncError', { topic, name: 'Refuser', ack: (m) => (m.event['hub.event'] === 'Patient-open' ? 409 : 200) });
  const b = await hub.join('Patient-open,SyncError', { topic, name: 'B' });
  const c = await hub.join('SyncError', { topic, name: 'C' });
  const d = await hub.join('Patient-open', { topic, name: 'D' });
  const ev = hub.event('Patient-open', [patient('p1')], { topic });
  assert.equal((await hub.post(ev)).status, 202);
  const se = await b.next(isSyncError);
  assert.deepEqual(Object.keys(se).sort(), ['event', 'id', 'timestamp']);
  assert.notEqual(se.id, ev.id);
  assert.match(se.timestamp, ISO_UTC);
  assert.deepEqual(se.event, {
    'hub.topic': topic,
    'hub.event': 'SyncError',
    context: [
      {
        key: 'operationoutcome',
        resource: hubOutcome({ eventId: ev.id, subscriber: 'Refuser', diagnostics: 'Refuser refused to follow Patient-open (409 Conflict)' }),
      },
    ],
  });
  assert.deepEqual(await c.next(isSyncError), se, 'one SyncError, the same to every other subscriber of SyncError');
  assert.ok(await refuser.nothing(isSyncError), 'not to the refuser');
  assert.ok(await d.nothing(isSyncError, 100), 'req 88: not to subscribers without SyncError');
  for (const s of [refuser, b, c, d]) await s.close();
});

test('req72 req95: a 500 answer, or another 4xx, sends a SyncError to the others', async () => {
  const topic = uid();
  const failer = await hub.join('Patient-open', { topic, name: 'Failer', ack: 500 });
  const rejecter = await hub.join('Patient-open', { topic, name: 'Rejecter', ack: 400 });
  const b = await hub.join('SyncError', { topic, name: 'B' });
  const ev = hub.event('Patient-open', [patient('p1')], { topic });
  await hub.post(ev);
  const got = [syncErrorDetails(await b.next(isSyncError)), syncErrorDetails(await b.next(isSyncError))].sort((x, y) => x.subscriber.localeCompare(y.subscriber));
  assert.deepEqual(got[0].oo, hubOutcome({ eventId: ev.id, subscriber: 'Failer', diagnostics: 'Failer failed to process Patient-open (500)' }));
  assert.deepEqual(got[1].oo, hubOutcome({ eventId: ev.id, subscriber: 'Rejecter', diagnostics: 'Rejecter rejected Patient-open (400)' }));
  for (const s of [failer, rejecter, b]) await s.close();
});

test('req74 5a-11 req71: acks with a string status ("409", "200") or with only an id are read as such; 202 is a success', async () => {
  const topic = uid();
  const stringRefuser = await joinWith('Patient-open', { topic, name: 'StringRefuser' }, (s, m) => s.send({ id: m.id, status: '409' }));
  const stringOk = await joinWith('Patient-open', { topic, name: 'StringOk' }, (s, m) => s.send({ id: m.id, status: '200' }));
  const idOnly = await joinWith('Patient-open', { topic, name: 'IdOnly' }, (s, m) => s.send({ id: m.id }));
  const deferrer = await hub.join('Patient-open', { topic, name: 'Deferrer', ack: 202 });
  const b = await hub.join('SyncError', { topic, name: 'B' });
  const ev = hub.event('Patient-open', [patient('p1')], { topic });
  await hub.post(ev);
  const se = syncErrorDetails(await b.next(isSyncError));
  assert.equal(se.subscriber, 'StringRefuser');
  assert.equal(se.eventId, ev.id);
  assert.ok(await b.nothing(isSyncError, 700), '"200", a missing status and 202 are successes');
  for (const s of [stringRefuser, stringOk, idOnly, deferrer, b]) await s.close();
});

test('req96: a 413 answer sends a SyncError with issue.code too-long', async () => {
  const topic = uid();
  const small = await hub.join('Patient-open', { topic, name: 'Small', ack: 413 });
  const b = await hub.join('SyncError', { topic, name: 'B' });
  const ev = hub.event('Patient-open', [patient('p1')], { topic });
  await hub.post(ev);
  const se = syncErrorDetails(await b.next(isSyncError));
  assert.deepEqual(se.oo, hubOutcome({ eventId: ev.id, subscriber: 'Small', code: 'too-long', diagnostics: 'Small could not handle Patient-open: too large (413)' }));
  await small.close();
  await b.close();
});

test('5a-15 5a-12: one SyncError per failing subscriber; none about a failed answer to a SyncError; unnamed subscribers are numbered, never shown by endpoint', async () => {
  const topic = uid();
  const r1 = await hub.join('Patient-open,SyncError', { topic, name: 'R1', ack: (m) => (m.event['hub.event'] === 'Patient-open' ? 409 : 200) });
  const r2 = await hub.join('Patient-open,SyncError', { topic, ack: (m) => (m.event['hub.event'] === 'Patient-open' ? 409 : 200) });
  const grumpy = await hub.join('SyncError', { topic, name: 'Grumpy', ack: 500 });
  const b = await hub.join('SyncError', { topic, name: 'B' });
  const ev = hub.event('Patient-open', [patient('p1')], { topic });
  await hub.post(ev);
  const names = [syncErrorDetails(await b.next(isSyncError)).subscriber, syncErrorDetails(await b.next(isSyncError)).subscriber].sort();
  assert.equal(names[0], 'R1');
  assert.match(names[1], /^unnamed subscriber #\d+$/);
  assert.ok(!names[1].includes(r2.endpoint.split('/').pop()), 'the endpoint is a secret');
  assert.equal(syncErrorDetails(await r1.next(isSyncError)).subscriber, names[1], 'R1 hears about the other refuser');
  assert.equal(syncErrorDetails(await r2.next(isSyncError)).subscriber, 'R1');
  assert.ok(await b.nothing(isSyncError, 700), "Grumpy's 500 answers to the SyncErrors raise no further SyncError");
  assert.ok(await r1.nothing(isSyncError, 100));
  for (const s of [r1, r2, grumpy, b]) await s.close();
});

test('req84 req80 req93 req45 req88: a SyncError POSTed by a subscriber is forwarded as sent to every SyncError subscriber', async () => {
  const topic = uid();
  const poster = await hub.join('Patient-open,SyncError', { topic, name: 'App X' });
  const b = await hub.join('SyncError', { topic, name: 'B' });
  const d = await hub.join('Patient-open', { topic, name: 'D' });
  const oo = hubOutcome({ eventId: 'e1', subscriber: 'App X', diagnostics: 'App X cannot open this patient: unsaved changes', severity: 'warning' });
  const only = (suffix) => ({ ...oo, issue: [{ ...oo.issue[0], details: { coding: oo.issue[0].details.coding.filter((c) => !c.system.endsWith(suffix)) } }] });
  for (const outcome of [oo, only('/subscriber'), only('/subscribername')]) {
    const ev = hub.event('syncerror', [{ key: 'operationoutcome', resource: outcome }], { topic });
    const r = await hub.post(ev);
    assert.equal(r.status, 202, r.text);
    for (const s of [b, poster]) {
      const msg = await s.next(isSyncError);
      assert.equal(msg.id, ev.id);
      assert.equal(msg.timestamp, ev.timestamp);
      assert.deepEqual(msg.event.context, ev.event.context, 'forwarded as sent');
    }
  }
  assert.ok(await d.nothing(isSyncError), 'req 45/88: not to subscribers without SyncError');
  // A SyncError whose OperationOutcome cannot be read is refused.
  const bad = await hub.post(hub.event('SyncError', [{ key: 'operationoutcome', resource: { resourceType: 'OperationOutcome', issue: [] } }], { topic }));
  assert.equal(bad.status, 400, bad.text);
  for (const s of [poster, b, d]) await s.close();
});

test('req86 req49: a close with 1000 or 1001 raises no SyncError, even with an answer owed; the close handshake completes', async () => {
  const topic = uid();
  await hub.post(hub.event('Patient-open', [patient('p0')], { topic }));
  const b = await hub.join('SyncError', { topic, name: 'B' });
  for (const code of [1000, 1001]) {
    const leaver = await hub.join('Patient-open', { topic, name: `Leaver${code}`, ack: false });
    await leaver.nextEvent('Patient-open');
    const t0 = Date.now();
    const closed = await leaver.close(code, 'bye');
    assert.equal(closed.code, code, 'the hub answers the Close frame with the same code (no 1006)');
    assert.ok(Date.now() - t0 < 2000, 'the handshake completes at once');
  }
  assert.ok(await b.nothing(isSyncError, 800));
  await b.close();
});

test('req85 neg23: an abnormal close (TCP connection dropped) sends a SyncError about the unanswered event, else about the current context', async () => {
  const topic = uid();
  const b = await hub.join('SyncError', { topic, name: 'B' });
  const owing = await hub.join('Patient-open', { topic, name: 'Owing', ack: false });
  const ev = hub.event('Patient-open', [patient('p1')], { topic });
  await hub.post(ev);
  await owing.nextEvent('Patient-open');
  owing.ws.terminate();
  const se = syncErrorDetails(await b.next(isSyncError, 3000));
  assert.equal(se.subscriber, 'Owing');
  assert.equal(se.eventId, ev.id);
  assert.equal(se.eventName, 'Patient-open');
  assert.match(se.diagnostics, /^Owing lost its connection to the hub \(WebSocket close code \d+\)$/);
  const idle = await hub.join('Patient-open', { topic, name: 'Idle' });
  assert.equal((await idle.nextEvent('Patient-open')).id, ev.id);
  await new Promise((r) => setTimeout(r, 100)); // let the replay's ack land
  idle.ws.terminate();
  const se2 = syncErrorDetails(await b.next(isSyncError, 3000));
  assert.equal(se2.subscriber, 'Idle');
  assert.equal(se2.eventId, ev.id, 'about the current context it no longer follows');
  // A clean close with a code other than 1000/1001 counts too (and the handshake completes).
  const app = await hub.join('Patient-open', { topic, name: 'AppCode' });
  await app.nextEvent('Patient-open');
  await new Promise((r) => setTimeout(r, 100));
  assert.equal((await app.close(4001, 'app error')).code, 4001);
  const se3 = syncErrorDetails(await b.next(isSyncError, 3000));
  assert.equal(se3.subscriber, 'AppCode');
  assert.equal(se3.diagnostics, 'AppCode lost its connection to the hub (WebSocket close code 4001)');
  // The subscription ended: its endpoint cannot be connected again.
  await assert.rejects(hub.subscribe({ topic, events: 'Patient-open', endpoint: owing.endpoint }).then((r) => (r.status === 404 ? Promise.reject(new Error('404')) : r)));
  await b.close();
});

test('req85 req87 5a-14 req74 req86 neg22: no answer within the default 10 s sends a SyncError to the others; the silent one is denied and closed', async () => {
  const topic = uid();
  const silent = await hub.join('Patient-open', { topic, name: 'Silent', ack: false });
  const leaver = await hub.join('Patient-open', { topic, name: 'Leaver', ack: false });
  const b = await hub.join('Patient-open,SyncError', { topic, name: 'B' });
  const idOnly = await joinWith('Patient-open,SyncError', { topic, name: 'IdOnly' }, (s, m) => s.send({ id: m.id }));
  const ev = hub.event('Patient-open', [patient('p1')], { topic });
  const t0 = Date.now();
  assert.equal((await hub.post(ev)).status, 202);
  await leaver.nextEvent('Patient-open');
  await leaver.close(1000);
  const msg = await b.next(isSyncError, 14_000);
  const elapsed = Date.now() - t0;
  assert.ok(elapsed >= 9_500 && elapsed < 13_500, `the default ack timeout is 10 s (SyncError after ${elapsed} ms)`);
  assert.deepEqual(syncErrorDetails(msg).oo, hubOutcome({ eventId: ev.id, subscriber: 'Silent', diagnostics: 'Silent did not answer Patient-open within 10 s' }));
  assert.deepEqual(await silent.next((m) => m['hub.mode'], 2000), {
    'hub.mode': 'denied',
    'hub.topic': topic,
    'hub.events': 'Patient-open',
    'hub.reason': 'unresponsive: no answer within 10 s',
  });
  assert.equal((await closeFrame(silent)).code, 1000, 'then the hub closes the socket');
  assert.equal(syncErrorDetails(await idOnly.next(isSyncError)).subscriber, 'Silent');
  assert.ok(await b.nothing(isSyncError, 500), 'no SyncError about IdOnly (answered with only an id) nor about Leaver (closed with 1000)');
  assert.equal(idOnly.ws.readyState, 1, 'IdOnly is still subscribed');
  assert.ok(!idOnly.all.some((m) => m['hub.mode'] === 'denied'));
  const again = await hub.subscribe({ topic, events: 'Patient-open', endpoint: silent.endpoint });
  assert.equal(again.status, 404, 'req 87: the silent subscriber was unsubscribed');
  await b.close();
  await idOnly.close();
});
