// Content sharing against the hub in workerd (req 107-121; neg 15-18, 20). MAX_BUNDLE_ENTRIES=20
// so that the entry limit (neg 18) is cheap to reach.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startHub, patient, report, reportRef, bundle, observationPut, observationDelete, uid } from './harness.mjs';

let hub;
before(async () => (hub = await startHub({ bindings: { MAX_BUNDLE_ENTRIES: '20' } })));
after(async () => hub?.stop());

const EVENTS = 'DiagnosticReport-open,DiagnosticReport-update,DiagnosticReport-select,DiagnosticReport-close';
const collection = (...resources) => ({ key: 'content', resource: { resourceType: 'Bundle', type: 'collection', ...(resources.length ? { entry: resources.map((resource) => ({ resource })) } : {}) } });
const obs = (id, extra = {}) => observationPut(id, extra).resource;

/** Opens report `rid` (patient `pid`) on `topic`; returns its version. */
async function openReport(topic, rid, pid = 'p1') {
  const r = await hub.post(hub.event('DiagnosticReport-open', [report(rid), patient(pid)], { topic }));
  assert.equal(r.status, 202, r.text);
  return r.json['context.versionId'];
}

const update = (topic, rid, versionId, entries, bundleId) => hub.event('DiagnosticReport-update', [reportRef(rid), bundle(entries, bundleId)], { topic, versionId });

test('req107 req108 req60 req110 req112 req116 5a-6 5a-17: an update with the current version is broadcast with a new versionId, the priorVersionId and the same Bundle', async () => {
  const topic = uid();
  const a = await hub.join(EVENTS, { topic, name: 'A' });
  const open = hub.event('DiagnosticReport-open', [report('r1'), patient('p1')], { topic });
  const opened = await hub.post(open);
  const v1 = opened.json['context.versionId'];
  const openMsg = await a.nextEvent('DiagnosticReport-open');
  assert.equal(openMsg.event['context.versionId'], v1, 'req 108: the distributed open carries the version');
  const ev = update(topic, 'r1', v1, [observationPut('obs1', { valueString: 'one' }), observationPut('obs2')], 'bundle-42');
  const r = await hub.post(ev);
  assert.equal(r.status, 202, r.text);
  const v2 = r.json['context.versionId'];
  assert.ok(v2 && v2 !== v1);
  const msg = await a.nextEvent('DiagnosticReport-update');
  assert.equal(msg.id, ev.id);
  assert.deepEqual(msg.event, {
    'hub.topic': topic,
    'hub.event': 'DiagnosticReport-update',
    'context.versionId': v2,
    'context.priorVersionId': v1,
    context: ev.event.context,
  }, 'req 112: the same Bundle (same id, entries as sent)');
  // A bundle without id and without request.url is fine too (§5a-17).
  const r3 = await hub.post(update(topic, 'r1', v2, [observationPut('obs3')]));
  assert.equal(r3.status, 202, r3.text);
  const msg3 = await a.nextEvent('DiagnosticReport-update');
  assert.equal(msg3.event['context.priorVersionId'], v2);
  assert.equal(msg3.event['context.versionId'], r3.json['context.versionId']);
  await a.close();
});

test('req61 5a-6: an update carrying the version as "versionId" (table spelling) is read too', async () => {
  const topic = uid();
  const v1 = await openReport(topic, 'r1');
  const ev = update(topic, 'r1', undefined, [observationPut('obs1')]);
  ev.event.versionId = v1;
  const r = await hub.post(ev);
  assert.equal(r.status, 202, r.text);
});

test('req106 req105 req111: GET shows the content as a collection Bundle while the context array stays as opened', async () => {
  const topic = uid();
  const v1 = await openReport(topic, 'r1');
  const finalReport = { resourceType: 'DiagnosticReport', id: 'r1', status: 'final' };
  const r = await hub.post(update(topic, 'r1', v1, [observationPut('obs2'), observationPut('obs1'), { request: { method: 'PUT' }, resource: finalReport }]));
  assert.equal(r.status, 202, r.text);
  const got = (await hub.getContext(topic)).json;
  assert.deepEqual(got, {
    'context.type': 'DiagnosticReport',
    'context.versionId': r.json['context.versionId'],
    context: [report('r1'), patient('p1'), collection(finalReport, obs('obs1'), obs('obs2'))],
  }, 'the report stays "preliminary" in the context; its new status is in the content');
  assert.ok(got.context.at(-1).resource.entry.every((e) => !('request' in e)), 'req 105: no request on content entries');
});

test('req109 neg15 5a-21 5a-5: an update with a stale or missing version is refused (409/400) and nothing is applied or sent', async () => {
  const topic = uid();
  const a = await hub.join(EVENTS, { topic });
  const v1 = await openReport(topic, 'r1');
  const r = await hub.post(update(topic, 'r1', v1, [observationPut('obs1')]));
  const v2 = r.json['context.versionId'];
  await a.nextEvent('DiagnosticReport-update');
  const before = (await hub.getContext(topic)).json;
  const stale = await hub.post(update(topic, 'r1', v1, [observationPut('obs1', { valueString: 'changed' }), observationDelete('obs1x')]));
  assert.equal(stale.status, 409, stale.text);
  assert.equal(stale.json.resourceType, 'OperationOutcome');
  assert.match(stale.json.issue[0].diagnostics, new RegExp(`is not the current version "${v2}"`));
  const missing = await hub.post(update(topic, 'r1', undefined, [observationPut('obs1', { valueString: 'changed' })]));
  assert.equal(missing.status, 400, missing.text);
  assert.deepEqual((await hub.getContext(topic)).json, before, 'old content, old version');
  assert.ok(await a.nothing((m) => m.event?.['hub.event'] === 'DiagnosticReport-update'));
  await a.close();
});

test('req111 req116 neg17: a bad update Bundle is refused as a whole (400) and nothing of it is applied', async () => {
  const topic = uid();
  const a = await hub.join(EVENTS, { topic });
  const v1 = await openReport(topic, 'r1');
  const good = await hub.post(update(topic, 'r1', v1, [observationPut('obs1')]));
  const v2 = good.json['context.versionId'];
  await a.nextEvent('DiagnosticReport-update');
  const before = (await hub.getContext(topic)).json;
  const bad = {
    'a POST entry': [observationPut('obs2'), { request: { method: 'POST' }, resource: obs('obs3') }],
    'the same resource twice': [observationPut('obs2'), observationPut('obs2', { valueString: 'again' })],
    'a DELETE without fullUrl': [observationPut('obs2'), { request: { method: 'DELETE' } }],
    'a PUT without resource': [observationPut('obs2'), { request: { method: 'PUT' } }],
    'a PUT and a DELETE of one resource': [observationDelete('obs1'), observationPut('obs1')],
  };
  for (const [what, entries] of Object.entries(bad)) {
    const r = await hub.post(update(topic, 'r1', v2, entries));
    assert.equal(r.status, 400, `${what}: ${r.text}`);
    assert.equal(r.json.resourceType, 'OperationOutcome');
  }
  const notTransaction = update(topic, 'r1', v2, [observationPut('obs2')]);
  notTransaction.event.context[1].resource.type = 'batch';
  assert.equal((await hub.post(notTransaction)).status, 400, 'not a transaction');
  const twoBundles = update(topic, 'r1', v2, [observationPut('obs2')]);
  twoBundles.event.context.push(bundle([observationPut('obs3')]));
  assert.equal((await hub.post(twoBundles)).status, 400, 'more than one Bundle');
  assert.deepEqual((await hub.getContext(topic)).json, before, 'nothing applied, version unchanged');
  assert.ok(await a.nothing((m) => m.event?.['hub.event'] === 'DiagnosticReport-update'));
  await a.close();
});

test('neg18 req96: an update with more entries than the hub takes is refused with 413', async () => {
  const topic = uid();
  const v1 = await openReport(topic, 'r1');
  const entries = Array.from({ length: 21 }, (_, i) => observationPut(`obs${i}`));
  const r = await hub.post(update(topic, 'r1', v1, entries));
  assert.equal(r.status, 413, r.text);
  assert.deepEqual((await hub.getContext(topic)).json.context.at(-1), collection());
  assert.equal((await hub.post(update(topic, 'r1', v1, entries.slice(0, 20)))).status, 202, '20 entries are fine');
});

test('neg16: an update or select for an anchor that is not open is refused with 409', async () => {
  const topic = uid();
  await openReport(topic, 'r1');
  const r = await hub.post(update(topic, 'r2', 'whatever', [observationPut('obs1')]));
  assert.equal(r.status, 409, r.text);
  assert.match(r.text, /not an open context/);
  const sel = await hub.post(hub.event('DiagnosticReport-select', [reportRef('r2'), { key: 'select', reference: { reference: 'Observation/obs1' } }], { topic }));
  assert.equal(sel.status, 409, sel.text);
});

test('req119 req14 req125: an update of an open, non-current anchor is applied to that anchor only', async () => {
  const topic = uid();
  const a = await hub.join(EVENTS, { topic });
  const v1 = await openReport(topic, 'r1');
  const w1 = await openReport(topic, 'r2', 'p2');
  const r = await hub.post(update(topic, 'r1', v1, [observationPut('obs1')]));
  assert.equal(r.status, 202, r.text);
  const v2 = r.json['context.versionId'];
  assert.equal((await a.nextEvent('DiagnosticReport-update')).event['context.priorVersionId'], v1);
  assert.deepEqual((await hub.getContext(topic)).json, { 'context.type': 'DiagnosticReport', 'context.versionId': w1, context: [report('r2'), patient('p2'), collection()] }, 'the current anchor is untouched');
  const reopen = await hub.post(hub.event('DiagnosticReport-open', [report('r1'), patient('p1')], { topic }));
  assert.equal(reopen.json['context.versionId'], v2, 'req 125: version and content belong to the anchor');
  assert.deepEqual((await hub.getContext(topic)).json.context.at(-1), collection(obs('obs1')));
  await a.close();
});

test('req115 req121 5a-16 neg20 req119: select is forwarded for the current anchor (an empty selection too) and refused (409) for a non-current one', async () => {
  const topic = uid();
  const a = await hub.join(EVENTS, { topic });
  await openReport(topic, 'r1');
  await openReport(topic, 'r2', 'p2');
  const sel = hub.event('DiagnosticReport-select', [reportRef('r2'), { key: 'select', reference: { reference: 'Observation/o1' } }, { key: 'select', reference: { reference: 'ImagingStudy/s1' } }], { topic });
  assert.equal((await hub.post(sel)).status, 202);
  const msg = await a.nextEvent('DiagnosticReport-select');
  assert.equal(msg.id, sel.id);
  assert.deepEqual(msg.event.context, sel.event.context);
  const clear = hub.event('DiagnosticReport-select', [reportRef('r2')], { topic });
  assert.equal((await hub.post(clear)).status, 202, 'an empty selection clears it');
  assert.deepEqual((await a.nextEvent('DiagnosticReport-select')).event.context, [reportRef('r2')]);
  const nonCurrent = await hub.post(hub.event('DiagnosticReport-select', [reportRef('r1'), { key: 'select', reference: { reference: 'Observation/o1' } }], { topic }));
  assert.equal(nonCurrent.status, 409, nonCurrent.text);
  assert.match(nonCurrent.text, /not the current context/);
  assert.ok(await a.nothing((m) => m.event?.['hub.event'] === 'DiagnosticReport-select'));
  await a.close();
});

test('req113 req116 req125: DELETE entries remove content; a close drops the content and the version', async () => {
  const topic = uid();
  const v1 = await openReport(topic, 'r1');
  const r2 = await hub.post(update(topic, 'r1', v1, [observationPut('obs1'), observationPut('obs2')]));
  const r3 = await hub.post(update(topic, 'r1', r2.json['context.versionId'], [observationDelete('obs1'), observationDelete('never-there')]));
  assert.equal(r3.status, 202, r3.text);
  const got = (await hub.getContext(topic)).json;
  assert.equal(got['context.versionId'], r3.json['context.versionId']);
  assert.deepEqual(got.context.at(-1), collection(obs('obs2')));
  assert.equal((await hub.post(hub.event('DiagnosticReport-close', [report('r1'), patient('p1')], { topic }))).status, 202);
  assert.deepEqual((await hub.getContext(topic)).json, { 'context.type': '', context: [] });
  const v4 = await openReport(topic, 'r1');
  assert.ok(![v1, r2.json['context.versionId'], r3.json['context.versionId']].includes(v4), 'a reopened anchor gets a new version');
  assert.deepEqual((await hub.getContext(topic)).json.context.at(-1), collection(), 'no content left');
  const stale = await hub.post(update(topic, 'r1', r3.json['context.versionId'], [observationPut('obs9')]));
  assert.equal(stale.status, 409, 'the old version died with the close');
});
