// Issue 12's multi-app situations with real apps: several SDK clients (each in its own Chromium
// page, each subscribed to different events) around the hub in workerd. The same scenarios run
// natively in core/tests/sync_scenarios.rs; here they go through the browser, the Worker and
// the wire.
//
// The in-sync invariant (ARCHITECTURE.md, "req 97-99, views"): once everything has settled, an
// app whose status is in-sync shows exactly what the hub holds for its events — the current
// open if it follows that event, else the most specific context the open implies that it
// follows (ImagingStudy, else Encounter, else Patient), else nothing. `viewOf` computes that
// from `GET {hub}/{topic}`.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setup, uid, eventually, syncErrorDetails } from './harness.mjs';

let env;
before(async () => (env = await setup()));
after(async () => env?.teardown());

// ---- events and contexts ----------------------------------------------------------------------

const PATIENT_ONLY = ['Patient-open', 'Patient-close', 'SyncError'];
const PATIENT_STUDY = ['Patient-open', 'Patient-close', 'ImagingStudy-open', 'ImagingStudy-close', 'SyncError'];
const REPORTING = ['DiagnosticReport-open', 'DiagnosticReport-close', 'ImagingStudy-open', 'ImagingStudy-close', 'Patient-open', 'Patient-close', 'SyncError'];
const EHR = [...REPORTING, 'UserLogout', 'Home-open'];

const pat = (id) => ({ key: 'patient', resource: { resourceType: 'Patient', id } });
const stu = (id, pid) => ({ key: 'study', resource: { resourceType: 'ImagingStudy', id, subject: { reference: `Patient/${pid}` } } });
const rep = (id, pid, sid) => [
  { key: 'report', resource: { resourceType: 'DiagnosticReport', id, status: 'preliminary', subject: { reference: `Patient/${pid}` } } },
  pat(pid),
  stu(sid, pid),
];
// As the spec's UserLogout example.
const logout = () => [
  {
    key: 'parameters',
    resource: {
      resourceType: 'Parameters',
      parameter: [{ name: 'code', valueCoding: { system: 'http://hl7.org/fhir/uv/fhircast/CodeSystem/fhircast-logout-codesystem', code: 'user-initiated' } }],
    },
  },
];

/** What an app following `events` should show for the hub's current context `cur` (a GET answer). */
function viewOf(events, cur) {
  const type = cur['context.type'];
  if (!type) return null;
  const ctx = cur.context;
  const follows = (name) => events.some((e) => e.toLowerCase() === name.toLowerCase());
  const resource = (key, rt) => ctx.find((e) => e.key === key && e.resource?.resourceType === rt && e.resource.id)?.resource;
  if (follows(`${type}-open`)) {
    const anchor = ctx.find((e) => e.resource?.resourceType === type)?.resource;
    return `${type}/${anchor.id}`;
  }
  // The opens it implies, least specific first (core/src/view.rs).
  const implied = [];
  const p = resource('patient', 'Patient');
  const e = resource('encounter', 'Encounter');
  if (type !== 'Patient' && p) implied.push(['Patient-open', `Patient/${p.id}`]);
  if (type !== 'Encounter' && e && p) implied.push(['Encounter-open', `Encounter/${e.id}`]);
  if (type !== 'ImagingStudy') {
    for (const s of ctx.filter((x) => x.key === 'study' && x.resource?.resourceType === 'ImagingStudy' && x.resource.id)) {
      implied.push(['ImagingStudy-open', `ImagingStudy/${s.resource.id}`]);
    }
  }
  return implied.reverse().find(([name]) => follows(name))?.[1] ?? null;
}

// ---- apps -------------------------------------------------------------------------------------

/**
 * An app: a page whose client follows `events` as `name`. `handlers` is page-side source (see
 * App.connect); every notification a handler sees is in log.events.
 */
async function app(name, events, handlers = '{}') {
  const a = await env.app();
  await a.connect({ events, subscriberName: name }, handlers);
  a.name = name;
  a.events = events;
  return a;
}

/** Publishes from `a`'s page; resolves with { id } or { error, status }. */
function publish(a, name, context) {
  return a.eval(
    ({ name, context }) =>
      client.publish(name, context).then(
        (id) => ({ id }),
        (e) => ({ error: e.message, status: e.status }),
      ),
    { name, context },
  );
}

const look = (a) => a.eval(() => ({ status: client.status(), anchor: client.currentContext()?.anchor ?? null }));

/** Notifications received on `a`'s sockets that it has not answered yet. */
function unanswered(a) {
  const acked = new Set(a.acks().map((x) => x.id));
  return a.frames
    .filter((f) => f.dir === 'received')
    .map((f) => JSON.parse(f.payload))
    .filter((m) => m.id && m.event && !acked.has(m.id));
}

/**
 * Waits until every app has settled: the hub awaits no answer from any connected subscriber of
 * the topic, no page has an unanswered notification, and no status is connecting or deciding.
 * Returns each app's { status, anchor }.
 */
async function settle(apps, { timeout = 10000, topic = env.hub.topic } = {}) {
  return eventually(
    async () => {
      const roster = await env.hub.request(`/${encodeURIComponent(topic)}/subscribers`);
      if (roster.status !== 200) throw new Error(`roster: ${roster.status} ${roster.text}`);
      const busy = roster.json.subscribers.filter((s) => s.connected && s.awaiting.length);
      if (busy.length) return false;
      if (apps.some((a) => unanswered(a).length)) return false;
      const looks = await Promise.all(apps.map(look));
      const moving = looks.some(({ status }) => status.state === 'connecting' || status.state === 'disconnected' || status.reason?.kind === 'deciding');
      return moving ? false : looks;
    },
    { timeout, interval: 25, message: 'every app to settle' },
  );
}

/** The in-sync invariant after settling; returns the states and the hub's current context. */
async function checkInSync(apps, step) {
  const looks = await settle(apps);
  const cur = await env.hub.getContext();
  assert.equal(cur.status, 200, cur.text);
  apps.forEach((a, i) => {
    const { status, anchor } = looks[i];
    if (status.state !== 'in-sync') return;
    const view = viewOf(a.events, cur.json);
    if (anchor === view) return;
    const message =
      `${step}: ${a.name} says in-sync showing ${anchor}, but the hub holds ${cur.json['context.type'] || 'nothing'} ` +
      `(${cur.json.context.filter((c) => c.resource?.id).map((c) => `${c.resource.resourceType}/${c.resource.id}`).join(', ')}) ` +
      `whose view for ${a.events.join(',')} is ${view}; its last notifications: ${lastNotifications(a)}`;
    assert.equal(anchor, view, message);
  });
  return { looks, cur: cur.json };
}

/** `a`'s last notifications and its answers, for failure messages. */
function lastNotifications(a, n = 4) {
  const acks = new Map(a.acks().map((x) => [x.id, x.status]));
  return a.frames
    .filter((f) => f.dir === 'received')
    .map((f) => JSON.parse(f.payload))
    .filter((m) => m.id && m.event)
    .slice(-n)
    .map((m) => {
      const ids = m.event.context.filter((c) => c.resource?.id).map((c) => c.resource.id).join(' ');
      return `${m.event['hub.event']} ${ids} (${m.timestamp}, answered ${acks.get(m.id)})`;
    })
    .join('; ');
}

async function closeAll(apps) {
  await Promise.all(apps.map((a) => a.eval(() => client.close()).catch(() => {})));
  await Promise.all(apps.map((a) => a.page.context().close().catch(() => {})));
}

/** A seeded generator (mulberry32): the same walk on every run. */
function rng(seed) {
  let s = seed >>> 0;
  return (n) => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) % n);
  };
}

/** One random context change: [event, context] over 3 patients, 3 studies, 3 reports. */
function change(next, { extra = false } = {}) {
  const p = `p${next(3)}`;
  const s = `s${next(3)}`;
  const r = `r${next(3)}`;
  switch (next(extra ? 8 : 6)) {
    case 0: return ['Patient-open', [pat(p)]];
    case 1: return ['Patient-close', [pat(p)]];
    case 2: return ['ImagingStudy-open', [stu(s, p), pat(p)]];
    case 3: return ['ImagingStudy-close', [stu(s, p), pat(p)]];
    case 4: return ['DiagnosticReport-open', rep(r, p, s)];
    case 5: return ['DiagnosticReport-close', rep(r, p, s)];
    case 6: return ['Home-open', []];
    default: return ['UserLogout', logout()];
  }
}

// ---- 1. Two refusals after 202 ------------------------------------------------------------------

test('issue12-1: two apps defer (202) the same Patient-open and both users refuse: every app is told of each refusal, no SyncError POST is refused', async () => {
  env.hub.topic = uid('topic');
  const ehr = await app('EHR', EHR);
  const defer = `{ 'Patient-open': (e) => { log.events.push(e); return 'defer'; } }`;
  const dictation = await app('Dictation', PATIENT_ONLY, defer);
  const viewer = await app('Viewer', PATIENT_STUDY, defer);
  const chart = await app('Chart', PATIENT_ONLY);
  const apps = [ehr, dictation, viewer, chart];
  await settle(apps);
  const sent = await publish(ehr, 'Patient-open', [pat('p1')]);
  assert.ok(sent.id, JSON.stringify(sent));
  for (const a of [dictation, viewer]) {
    await a.until((id) => log.events.some((e) => e.id === id), sent.id);
    assert.deepEqual(
      await eventually(() => a.acks().find((x) => x.id === sent.id)),
      { id: sent.id, status: 202 },
      `${a.name} answered 202`,
    );
  }
  await dictation.eval((id) => client.decide(id, 'refuse'), sent.id);
  await viewer.eval((id) => client.decide(id, 'refuse'), sent.id);
  for (const a of apps) {
    await a.until((id) => log.syncErrors.filter((s) => s.eventId === id).length >= 2, sent.id, { timeout: 8000 }).catch(() => {});
    const about = (await a.log()).syncErrors.filter((s) => s.eventId === sent.id);
    assert.deepEqual(
      about.map((s) => s.subscriberName).sort(),
      ['Dictation', 'Viewer'],
      `${a.name} was told of each refusal: ${JSON.stringify(about)}`,
    );
    assert.equal(new Set(about.map((s) => s.id)).size, 2, `two distinct SyncErrors for ${a.name}`);
  }
  assert.ok((await ehr.log()).syncErrors.every((s) => s.ownEvent), 'the EHR recognises its own event');
  for (const a of [dictation, viewer]) {
    const posts = a.requests.filter((r) => r.method === 'POST' && r.body?.includes('"SyncError"'));
    assert.ok(posts.length >= 1, `${a.name} POSTed its SyncError`);
    await eventually(() => posts.every((r) => r.status !== undefined || r.failed), { message: 'the answers' });
    assert.deepEqual(
      posts.map((r) => r.status),
      posts.map(() => 202),
      `${a.name}'s SyncError POSTs were all accepted: ${JSON.stringify(posts.map((r) => [r.status, JSON.parse(r.body).id]))}`,
    );
    const status = await a.eval(() => client.status());
    assert.notEqual(status.state, 'in-sync', `${a.name} refused: it does not show the hub's context`);
  }
  await checkInSync(apps, 'after two refusals');
  await closeAll(apps);
});

// ---- 2. A patient-only app joining while a report is current ------------------------------------

test('issue12-2: a chart app (Patient-open/close) joining while a DiagnosticReport is current shows its patient, in-sync; when the report closes it shows nothing, still in-sync', async () => {
  env.hub.topic = uid('topic');
  const reporting = await app('Reporting', REPORTING);
  const report = rep('r1', 'p1', 's1');
  assert.ok((await publish(reporting, 'DiagnosticReport-open', report)).id);
  const chart = await app('Chart', PATIENT_ONLY);
  const apps = [reporting, chart];
  const { looks } = await checkInSync(apps, 'joined');
  assert.equal(looks[1].status.state, 'in-sync', JSON.stringify(looks[1].status));
  assert.equal(looks[1].anchor, 'Patient/p1', 'the report\'s patient, never the report');
  const shown = await chart.eval(() => client.currentContext());
  assert.equal(shown.event, 'Patient-open');
  assert.equal(shown.context.find((c) => c.key === 'patient')?.resource.id, 'p1');
  assert.ok(!shown.context.some((c) => c.resource?.resourceType === 'DiagnosticReport'), JSON.stringify(shown.context));
  assert.ok((await publish(reporting, 'DiagnosticReport-close', report)).id);
  const after = await checkInSync(apps, 'report closed');
  assert.equal(after.cur['context.type'], '', 'the hub holds no context');
  assert.equal(after.looks[1].anchor, null, 'the report closed: the chart shows nothing');
  assert.equal(after.looks[1].status.state, 'in-sync', JSON.stringify(after.looks[1].status));
  await closeAll(apps);
});

// ---- 3. Logout and Home-open ---------------------------------------------------------------------

test('issue12-3: after UserLogout, and after Home-open, an app that follows only Patient-open/close shows no context', async () => {
  env.hub.topic = uid('topic');
  const ehr = await app('EHR', EHR);
  const chart = await app('Chart', PATIENT_ONLY);
  const viewer = await app('Viewer', PATIENT_STUDY);
  const apps = [ehr, chart, viewer];
  for (const [name, context] of [['UserLogout', logout()], ['Home-open', []]]) {
    assert.ok((await publish(ehr, 'DiagnosticReport-open', rep('r1', 'p1', 's1'))).id);
    const opened = await checkInSync(apps, `before ${name}`);
    assert.deepEqual(opened.looks.map((l) => l.anchor), ['DiagnosticReport/r1', 'Patient/p1', 'ImagingStudy/s1']);
    const sent = await publish(ehr, name, context);
    assert.ok(sent.id, JSON.stringify(sent));
    const { looks, cur } = await checkInSync(apps, `after ${name}`);
    assert.equal(cur['context.type'], '', `the hub holds no context after ${name}`);
    apps.forEach((a, i) => {
      assert.equal(looks[i].anchor, null, `${a.name} still shows a context after ${name}`);
      assert.equal(looks[i].status.state, 'in-sync', `${a.name} after ${name}: ${JSON.stringify(looks[i].status)}`);
    });
  }
  // The next session opens normally.
  assert.ok((await publish(ehr, 'Patient-open', [pat('p2')])).id);
  const { looks } = await checkInSync(apps, 'next session');
  assert.equal(looks[1].anchor, 'Patient/p2');
  await closeAll(apps);
});

// ---- 4. Different event sets ----------------------------------------------------------------------

test('issue12-4: three apps with different event sets through 40 seeded opens and closes from an EHR: every in-sync app shows what the hub holds for its events', async () => {
  env.hub.topic = uid('topic');
  const ehr = await app('EHR', EHR);
  const followers = [await app('Chart', PATIENT_ONLY), await app('Viewer', PATIENT_STUDY), await app('Reporting', REPORTING)];
  const apps = [ehr, ...followers];
  const next = rng(4);
  let accepted = 0;
  let inSync = 0;
  for (let step = 0; step < 40; step++) {
    const [name, context] = change(next);
    const r = await publish(ehr, name, context);
    if (r.id) accepted++;
    else assert.equal(r.status, 409, `step ${step} ${name}: ${r.error}`);
    const { looks } = await checkInSync(apps, `step ${step} (${name} ${context.map((c) => c.resource.id).join(' ')})`);
    looks.forEach((l, i) => {
      assert.equal(l.status.state, 'in-sync', `step ${step}: ${apps[i].name} ${JSON.stringify(l.status)}`);
      inSync++;
    });
  }
  assert.ok(accepted >= 20, `${accepted} changes accepted`);
  assert.equal(inSync, 40 * apps.length);
  await closeAll(apps);
});

test('issue12-4: three apps with different event sets and an EHR, each publishing, through 300 random context changes (logout, Home-open too): the in-sync invariant after every step', async () => {
  env.hub.topic = uid('topic');
  const ehr = await app('EHR', EHR);
  const chart = await app('Chart', PATIENT_ONLY);
  const viewer = await app('Viewer', PATIENT_STUDY);
  const reporting = await app('Reporting', REPORTING);
  const apps = [ehr, chart, viewer, reporting];
  const next = rng(12);
  const counts = { accepted: 0, refused: 0 };
  for (let step = 0; step < 300; step++) {
    const [name, context] = change(next, { extra: true });
    const senders = apps.filter((a) => a.events.includes(name));
    const by = senders[next(senders.length)];
    const r = await publish(by, name, context);
    if (r.id) counts.accepted++;
    else {
      assert.equal(r.status, 409, `step ${step} ${by.name} ${name}: ${r.error}`);
      counts.refused++;
    }
    const { looks } = await checkInSync(apps, `step ${step} (${by.name}: ${name} ${context.map((c) => c.resource.id ?? '').join(' ')})`);
    looks.forEach((l, i) => assert.equal(l.status.state, 'in-sync', `step ${step}: ${apps[i].name} ${JSON.stringify(l.status)}`));
  }
  assert.ok(counts.accepted >= 150, JSON.stringify(counts));
  await closeAll(apps);
});

// ---- 5. A clock far ahead -------------------------------------------------------------------------

test('issue12-5: an event stamped 2200-01-01 is refused with 400 naming the hub\'s clock; correctly stamped changes from every app are accepted and followed afterwards', async () => {
  env.hub.topic = uid('topic');
  const chart = await app('Chart', PATIENT_ONLY);
  const viewer = await app('Viewer', PATIENT_STUDY);
  const reporting = await app('Reporting', REPORTING);
  const apps = [chart, viewer, reporting];
  const bogus = env.hub.event('Patient-open', [pat('p9')], { timestamp: '2200-01-01T00:00:00Z' });
  const r = await env.hub.post(bogus);
  assert.equal(r.status, 400, r.text);
  assert.match(r.text, /hub's clock/);
  const steps = [
    [chart, 'Patient-open', [pat('p1')], ['Patient/p1', 'Patient/p1', 'Patient/p1']],
    [viewer, 'ImagingStudy-open', [stu('s2', 'p2'), pat('p2')], ['Patient/p2', 'ImagingStudy/s2', 'ImagingStudy/s2']],
    [reporting, 'DiagnosticReport-open', rep('r3', 'p3', 's3'), ['Patient/p3', 'ImagingStudy/s3', 'DiagnosticReport/r3']],
    [chart, 'Patient-open', [pat('p4')], ['Patient/p4', 'Patient/p4', 'Patient/p4']],
  ];
  for (const [by, name, context, shown] of steps) {
    const sent = await publish(by, name, context);
    assert.ok(sent.id, `${by.name}'s ${name} was accepted: ${JSON.stringify(sent)}`);
    const { looks } = await checkInSync(apps, `${by.name}: ${name}`);
    assert.deepEqual(looks.map((l) => l.anchor), shown, `after ${by.name}'s ${name}`);
    assert.deepEqual(looks.map((l) => l.status.state), ['in-sync', 'in-sync', 'in-sync']);
  }
  await closeAll(apps);
});

// ---- 6. A refused derived open --------------------------------------------------------------------

test('issue12-6: a patient-only app refuses the Patient-open derived from a DiagnosticReport-open: the report app is told of its own event and is out of sync', async () => {
  env.hub.topic = uid('topic');
  const reporting = await app('Reporting', REPORTING);
  const chart = await app('Chart', PATIENT_ONLY, `{ 'Patient-open': (e) => { log.events.push(e); return 'refuse'; } }`);
  const apps = [reporting, chart];
  await settle(apps);
  const sent = await publish(reporting, 'DiagnosticReport-open', rep('r1', 'p1', 's1'));
  assert.ok(sent.id, JSON.stringify(sent));
  await chart.until(() => log.events.length === 1);
  const derived = (await chart.log()).events[0];
  assert.equal(derived.event.context.find((c) => c.key === 'patient')?.resource.id, 'p1', 'the chart was sent the report\'s patient');
  await reporting.until(() => log.syncErrors.length >= 1);
  const [se] = (await reporting.log()).syncErrors;
  assert.equal(se.eventId, sent.id, `the SyncError names the report app's own event: ${JSON.stringify(se)}`);
  assert.equal(se.ownEvent, true);
  assert.equal(se.subscriberName, 'Chart');
  const status = await reporting.eval(() => client.status());
  assert.equal(status.state, 'out-of-sync', JSON.stringify(status));
  assert.equal(status.reason.kind, 'own-event-not-followed');
  assert.equal(await chart.eval(() => client.status().state), 'out-of-sync');
  await checkInSync(apps, 'after the refusal');
  await closeAll(apps);
});

// ---- 7. A reconnect after a refusal ---------------------------------------------------------------

test('issue12-7: an app refuses a Patient-open (unsaved work), its connection drops and it reconnects: it still shows the previous patient and is not in-sync', async () => {
  env.hub.topic = uid('topic');
  const ehr = await app('EHR', EHR);
  const dictation = await app('Dictation', PATIENT_ONLY, `{ 'Patient-open': (e) => e.event.context[0].resource.id === 'p2' ? 'refuse' : 'accept' }`);
  const apps = [ehr, dictation];
  assert.ok((await publish(ehr, 'Patient-open', [pat('p1')])).id);
  assert.ok((await publish(ehr, 'Patient-open', [pat('p2')])).id);
  let { looks } = await checkInSync(apps, 'refused');
  assert.equal(looks[1].anchor, 'Patient/p1', 'kept its unsaved work');
  assert.notEqual(looks[1].status.state, 'in-sync');
  const sockets = dictation.sockets.length;
  await env.hub.restart();
  await dictation.until(() => log.status.some((s) => s.state === 'disconnected'), undefined, { timeout: 10000 });
  await eventually(() => dictation.sockets.length > sockets, { timeout: 15000, message: 'a new socket' });
  ({ looks } = await checkInSync(apps, 'after the reconnect'));
  assert.equal(looks[1].anchor, 'Patient/p1', 'a reconnect must not switch it');
  assert.notEqual(looks[1].status.state, 'in-sync', JSON.stringify(looks[1].status));
  assert.equal((await env.hub.getContext()).json.context[0].resource.id, 'p2', 'the hub still holds p2');
  // When the user goes back to p1, the app is in sync again without being switched.
  assert.ok((await publish(ehr, 'Patient-open', [pat('p1')])).id);
  ({ looks } = await checkInSync(apps, 'back to p1'));
  assert.deepEqual(looks[1], { status: { state: 'in-sync' }, anchor: 'Patient/p1' });
  await closeAll(apps);
});

// ---- 8. SyncError content (seed 003) --------------------------------------------------------------

test('issue12-8: a SyncError the hub generates has severity information and both subscriber codings (…/subscriber, then …/subscribername)', async () => {
  env.hub.topic = uid('topic');
  const ehr = await app('EHR', EHR);
  const refuser = await app('Viewer', PATIENT_ONLY, `{ 'Patient-open': () => 'refuse' }`);
  const failer = await app('Failer', PATIENT_STUDY, `{ 'Patient-open': () => 'fail' }`);
  const decider = await app('Dictation', PATIENT_ONLY, `{ 'Patient-open': (e) => { setTimeout(() => client.decide(e.id, 'refuse'), 100); return 'defer'; } }`);
  const apps = [ehr, refuser, failer, decider];
  await settle(apps);
  const sent = await publish(ehr, 'Patient-open', [pat('p1')]);
  assert.ok(sent.id, JSON.stringify(sent));
  const received = () =>
    ehr.frames
      .filter((f) => f.dir === 'received')
      .map((f) => JSON.parse(f.payload))
      .filter((m) => m.event?.['hub.event']?.toLowerCase() === 'syncerror');
  await eventually(() => received().length >= 3, { timeout: 8000, message: 'three SyncErrors' });
  const by = (name) => received().map(syncErrorDetails).find((d) => d.subscriber === name);
  for (const name of ['Viewer', 'Failer']) {
    const d = by(name);
    assert.ok(d, `told of ${name}`);
    assert.equal(d.eventId, sent.id);
    assert.equal(d.severity, 'information', `the hub's SyncError about ${name}`);
    const coding = d.oo.issue[0].details.coding;
    assert.deepEqual(
      coding.map((c) => c.system),
      [
        'https://fhircast.hl7.org/events/syncerror/eventid',
        'https://fhircast.hl7.org/events/syncerror/eventname',
        'https://fhircast.hl7.org/events/syncerror/subscriber',
        'https://fhircast.hl7.org/events/syncerror/subscribername',
      ],
      JSON.stringify(coding),
    );
    assert.deepEqual(coding.slice(2).map((c) => c.code), [name, name]);
  }
  // The subscriber's own SyncError after a 202 stays a warning (req 94).
  assert.equal(by('Dictation')?.severity, 'warning');
  await closeAll(apps);
});
