// The audit trail (issue 17): every subscribe, unsubscribe, event and SyncError as a FHIR R4
// AuditEvent (IHE Basic Audit Log Patterns where they fit), delivered to the Cloudflare Queue
// bound as AUDIT_QUEUE (here Miniflare's queue, consumed by a second Worker that keeps what it
// receives), or to the Worker's log when none is bound. Never a resource body.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startHubWith, patient } from './harness.mjs';
import { jwt, JWT_BINDINGS } from './tokens.mjs';

const cleanup = [];
after(async () => {
  for (const c of cleanup) await c();
});

/** A consumer that keeps every message; GET returns them. */
const SINK = `
const received = [];
export default {
  async queue(batch) { for (const m of batch.messages) { received.push(m.body); m.ack(); } },
  async fetch() { return Response.json(received); },
};`;

/** The hub with `bindings`, its audit queue consumed by the sink; `stdout` gets workerd's output lines. */
async function start(bindings, { queue = true, stdout } = {}) {
  const options = {};
  if (stdout) {
    options.handleRuntimeStdio = (out, err) => {
      let buf = '';
      out.on('data', (d) => {
        buf += d;
        const lines = buf.split('\n');
        buf = lines.pop();
        lines.forEach(stdout);
      });
      err.resume();
    };
  }
  const hub = await startHubWith({
    bindings: { AUDIT_SINK: 'auto', ...bindings },
    hub: queue ? { queueProducers: { AUDIT_QUEUE: 'audit' } } : {},
    workers: queue ? [{ name: 'sink', modules: true, script: SINK, compatibilityDate: '2026-07-01', queueConsumers: { audit: { maxBatchTimeout: 1 } } }] : [],
    options,
  });
  cleanup.push(() => hub.stop());
  hub.received = async () => (await (await hub.worker('sink')).fetch('http://sink/')).json();
  return hub;
}

const MARK = 'Zzyzx-MARKED-Name';

/** What identifies an AuditEvent here: its subtype codes, action, outcome, agents, entities. */
function summary(a, topic) {
  assert.equal(a.resourceType, 'AuditEvent');
  assert.deepEqual(a.type, { system: 'http://terminology.hl7.org/CodeSystem/audit-event-type', code: 'rest', display: 'RESTful Operation' });
  assert.match(a.recorded, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  assert.deepEqual(a.source.type, [{ system: 'http://terminology.hl7.org/CodeSystem/security-source-type', code: '4', display: 'Application Server' }]);
  assert.equal(a.entity[0].what.identifier.value, topic);
  return {
    what: a.subtype.map((s) => s.code).join(' '),
    action: a.action,
    outcome: a.outcome,
    ...(a.outcomeDesc ? { why: a.outcomeDesc } : {}),
    agents: a.agent.map((g) => `${g.type.coding[0].code}:${g.who.identifier?.value ?? g.who.display}${g.requestor ? '*' : ''}`),
    details: Object.fromEntries((a.entity[0].detail ?? []).map((d) => [d.type, d.valueString])),
    anchors: a.entity.slice(1).map((e) => `${e.what.reference} ${e.role.display}`),
  };
}

async function eventually(read, done, ms = 8000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await read();
    if (done(v)) return v;
    if (Date.now() > end) assert.fail(`never: ${JSON.stringify(v, null, 1)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test('audit: a scripted session (two subscribes, an event, a refusal of it, a refused request, an unsubscribe) gives exactly its AuditEvents on the queue, naming user, client, topic and patient, never a body', async () => {
  const hub = await start({ ...JWT_BINDINGS, AUDIT_SITE: 'radiology-1' });
  const ehrToken = jwt({ sub: 'dr-who', client_id: 'ehr-app' });
  const viewerToken = jwt({ sub: 'dr-who', client_id: 'viewer-app' });
  const ehr = await hub.join('Patient-open,SyncError', { name: 'EHR', token: ehrToken });
  await hub.join('Patient-open', { name: 'Viewer', token: viewerToken, ack: 409 });
  assert.equal((await hub.post(hub.event('Patient-open', [patient('p1', { name: [{ family: MARK }] })], { id: 'e1' }), { token: ehrToken })).status, 202);
  await ehr.nextEvent('SyncError');
  const stale = hub.event('Patient-open', [patient('p2', { name: [{ family: MARK }] })], { id: 'e2', timestamp: '2020-01-01T00:00:00Z' });
  assert.equal((await hub.post(stale, { token: ehrToken })).status, 409);
  assert.equal((await hub.unsubscribe(ehr.endpoint, { token: ehrToken })).status, 202);

  await eventually(hub.received, (r) => r.length >= 6);
  await new Promise((r) => setTimeout(r, 1200)); // nothing more arrives
  const all = await hub.received();
  assert.ok(!JSON.stringify(all).includes('MARKED'), 'a resource body in the audit trail');
  assert.equal(all[0].source.site, 'radiology-1');
  assert.equal(Object.keys(all[0])[0], 'resourceType');
  assert.deepEqual(
    all.map((a) => summary(a, hub.topic)),
    [
      { what: 'subscribe', action: 'C', outcome: '0', agents: ['humanuser:dr-who*', '110150:ehr-app', '110152:FHIRcast hub'], details: { 'subscriber.name': 'EHR', 'hub.events': 'Patient-open,SyncError' }, anchors: [] },
      { what: 'subscribe', action: 'C', outcome: '0', agents: ['humanuser:dr-who*', '110150:viewer-app', '110152:FHIRcast hub'], details: { 'subscriber.name': 'Viewer', 'hub.events': 'Patient-open' }, anchors: [] },
      { what: 'event Patient-open', action: 'E', outcome: '0', agents: ['humanuser:dr-who*', '110150:ehr-app', '110152:FHIRcast hub'], details: { 'event.id': 'e1' }, anchors: ['Patient/p1 Patient'] },
      {
        what: 'sync-error Patient-open',
        action: 'E',
        outcome: '4',
        why: 'Viewer refused to follow Patient-open (409 Conflict)',
        agents: ['110152:FHIRcast hub*'],
        details: { 'event.id': all[3].entity[0].detail[0].valueString, 'about.event.id': 'e1', 'subscriber.name': 'Viewer', source: 'hub', cause: 'refused' },
        anchors: [],
      },
      { what: 'event Patient-open', action: 'E', outcome: '4', why: all[4].outcomeDesc, agents: ['humanuser:dr-who*', '110150:ehr-app', '110152:FHIRcast hub'], details: { 'event.id': 'e2' }, anchors: [] },
      { what: 'unsubscribe', action: 'D', outcome: '0', agents: ['humanuser:dr-who*', '110150:ehr-app', '110152:FHIRcast hub'], details: { 'subscriber.name': 'EHR', reason: 'unsubscribed' }, anchors: [] },
    ],
  );
  assert.match(all[4].outcomeDesc, /earlier than that of the event that set the current context/);
});

test('audit: with no queue bound, each AuditEvent is one line of the Worker log; AUDIT_SINK=off sends none', async () => {
  const lines = [];
  const hub = await start({}, { queue: false, stdout: (l) => lines.push(l) });
  hub.topic = `audit-log-${Date.now()}`;
  await hub.join('Patient-open', { name: 'Viewer' });
  assert.equal((await hub.post(hub.event('Patient-open', [patient('p1', { name: [{ family: MARK }] })], { id: 'e1' }))).status, 202);
  const audits = await eventually(
    () => lines.filter((l) => l.includes('AuditEvent {')).map((l) => JSON.parse(l.slice(l.indexOf('{')))),
    (a) => a.length >= 2,
  );
  assert.deepEqual(
    audits.map((a) => summary(a, hub.topic)).map((s) => [s.what, s.outcome, s.agents[0]]),
    [
      ['subscribe', '0', '110153:unidentified (no access token)*'],
      ['event Patient-open', '0', '110153:unidentified (no access token)*'],
    ],
  );
  assert.ok(!lines.some((l) => l.includes('MARKED')));
  // Written as FHIR JSON is: resourceType first.
  for (const l of lines.filter((x) => x.includes('AuditEvent {'))) assert.ok(l.slice(l.indexOf('{')).startsWith('{"resourceType":"AuditEvent",'), l);

  const quiet = [];
  const off = await start({ AUDIT_SINK: 'off' }, { queue: false, stdout: (l) => quiet.push(l) });
  await off.join('Patient-open', { name: 'Viewer' });
  assert.equal((await off.post(off.event('Patient-open', [patient('p1')]))).status, 202);
  await new Promise((r) => setTimeout(r, 300));
  assert.deepEqual(
    quiet.filter((l) => l.includes('AuditEvent')),
    [],
  );
});
