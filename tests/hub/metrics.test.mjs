// Metrics (issue 17): counts and latencies written to the Workers Analytics Engine dataset bound
// as METRICS. Miniflare's local dataset keeps nothing, so the binding here is a stand-in with the
// same method (a wrapped binding whose writeDataPoint forwards each point to a recorder Worker);
// the hub cannot tell the difference. Columns: core/src/metrics.rs, queries: README "Metrics".
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startHubWith, patient } from './harness.mjs';

const cleanup = [];
after(async () => {
  for (const c of cleanup) await c();
});

/** The stand-in dataset: writeDataPoint(point) as Analytics Engine's, sent on to the recorder. */
const DATASET = `export default function (env) {
  return { writeDataPoint(point) { env.RECORDER.fetch('http://recorder/', { method: 'POST', body: JSON.stringify(point) }); } };
}`;
const RECORDER = `const points = [];
export default { async fetch(req) { if (req.method === 'POST') { points.push(await req.json()); return new Response('ok'); } return Response.json(points); } };`;

async function start(bindings) {
  const hub = await startHubWith({
    bindings,
    hub: { wrappedBindings: { METRICS: { scriptName: 'dataset' } } },
    workers: [
      { name: 'dataset', modules: true, script: DATASET, serviceBindings: { RECORDER: 'recorder' } },
      { name: 'recorder', modules: true, script: RECORDER, compatibilityDate: '2026-07-01' },
    ],
  });
  cleanup.push(() => hub.stop());
  hub.points = async () => (await (await hub.worker('recorder')).fetch('http://recorder/')).json();
  return hub;
}

test('metrics: a session writes one data point per event, answer (latency, status), timeout, SyncError (by cause) and subscription change, indexed by topic; no resource content', async () => {
  // Recording for metrics alone: no timeline, no audit.
  const hub = await start({ ACK_TIMEOUT_SECONDS: '1', TIMELINE_LIMIT: '0', AUDIT_SINK: 'off' });
  const ehr = await hub.join('Patient-open,SyncError', { name: 'EHR' });
  await hub.join('Patient-open', { name: 'Viewer', ack: 409 });
  await hub.join('Patient-open', { name: 'Silent', ack: false });
  assert.equal((await hub.post(hub.event('Patient-open', [patient('p1', { name: [{ family: 'Zzyzx-MARKED' }] })], { id: 'e1' }))).status, 202);
  assert.equal((await hub.post(hub.event('Patient-open', [patient('p2')], { id: 'e1' }))).status, 409); // id reused: refused
  await ehr.nextEvent('SyncError');
  await ehr.nextEvent('SyncError', 4000); // the silent one, after the 1 s ack timeout
  let points;
  for (let i = 0; i < 100; i++) {
    points = await hub.points();
    if (points.filter((p) => p.blobs[0] === 'answer' && p.blobs[1] === 'SyncError').length === 2) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.ok(!JSON.stringify(points).includes('MARKED'), 'resource content in a metric');
  for (const p of points) {
    assert.deepEqual(p.indexes, [hub.topic]);
    assert.equal(p.blobs.length, 5);
    assert.equal(p.doubles.length, 3);
    assert.equal(p.doubles[0], 1);
  }
  const rows = points.map((p) => [...p.blobs, p.doubles[2]].join(' | '));
  const expected = [
    'subscription |  | subscribed | EHR |  | 0',
    'subscription |  | subscribed | Viewer |  | 0',
    'subscription |  | subscribed | Silent |  | 0',
    'event | Patient-open | accepted |  |  | 0',
    'event | Patient-open | refused |  |  | 409',
    'answer | Patient-open | 200 | EHR |  | 200',
    'answer | Patient-open | 409 | Viewer |  | 409',
    'sync_error | Patient-open | refused | Viewer | hub | 0',
    'answer | SyncError | 200 | EHR |  | 200',
    'timeout | Patient-open | no answer | Silent |  | 0',
    'subscription |  | unsubscribed | Silent | unresponsive: no answer within 1 s | 0',
    'sync_error | Patient-open | unresponsive | Silent | hub | 0',
    'answer | SyncError | 200 | EHR |  | 200',
  ];
  // Answers race the refused POST: compare as multisets, and check the causal order apart.
  assert.deepEqual([...rows].sort(), [...expected].sort());
  const at = (row) => rows.indexOf(row);
  assert.ok(at('answer | Patient-open | 409 | Viewer |  | 409') < at('sync_error | Patient-open | refused | Viewer | hub | 0'));
  assert.ok(at('timeout | Patient-open | no answer | Silent |  | 0') < at('sync_error | Patient-open | unresponsive | Silent | hub | 0'));
  for (const p of points.filter((x) => x.blobs[0] === 'answer')) assert.ok(p.doubles[1] >= 0 && p.doubles[1] < 1000, `latency ${p.doubles[1]}`);
});
