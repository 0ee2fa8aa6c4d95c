// The timeline, GET {hub}/{topic}/timeline (issue 17): the protocol facts of a topic, bounded
// (TIMELINE_LIMIT), stored with it, for whoever runs the hub: who subscribed, which event went
// to whom, who answered what and how fast, who timed out, which SyncError followed. References
// only, never a resource's content. Scope rules as the roster's.
import { test, after } from 'node:test';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import assert from 'node:assert/strict';
import { startHub, patient, uid } from './harness.mjs';
import { jwt, JWT_BINDINGS } from './tokens.mjs';

const hubs = [];
after(async () => Promise.all(hubs.map((h) => h.stop())));
const start = async (bindings) => {
  const hub = await startHub({ bindings });
  hubs.push(hub);
  return hub;
};

async function timeline(hub, query = '', { token, topic = hub.topic } = {}) {
  const r = await hub.request(`/${encodeURIComponent(topic)}/timeline${query}`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  assert.equal(r.status, 200, r.text);
  assert.match(r.headers.get('content-type'), /^application\/json/);
  return r.json;
}

/** Polls the timeline until `done(facts)` holds (facts are written within the hub's flush, or at once when read). */
async function until(hub, done, ms = 8000) {
  const end = Date.now() + ms;
  for (;;) {
    const t = await timeline(hub);
    if (done(t.facts)) return t;
    if (Date.now() > end) assert.fail(`timeline never satisfied the condition: ${JSON.stringify(t.facts, null, 1)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const MARK = 'Zzyzx-MARKED-Name';

/** The timeline rows as stored in the topic objects' SQLite files under `dir` (Miniflare's persistence). */
function storedTimeline(dir) {
  const files = readdirSync(dir, { recursive: true }).filter((f) => String(f).endsWith('.sqlite'));
  const rows = [];
  for (const f of files) {
    const db = new DatabaseSync(join(dir, String(f)), { readOnly: true });
    try {
      const has = db.prepare("SELECT name FROM sqlite_master WHERE name = 'timeline_batches'").all().length > 0;
      if (has) rows.push(...db.prepare('SELECT facts FROM timeline_batches ORDER BY last').all().map((r) => r.facts));
    } finally {
      db.close();
    }
  }
  return rows;
}

test('timeline: an event, who it went to, each answer with its latency, a refusal, a timeout and the SyncErrors, in order; never a resource body; kept across a restart', async () => {
  const hub = await start({ ACK_TIMEOUT_SECONDS: '2' });
  const ehr = await hub.join('Patient-open,SyncError', { name: 'EHR' });
  const viewer = await hub.join('Patient-open', { name: 'Viewer', ack: 409 });
  await hub.join('Patient-open', { name: 'Silent', ack: false });
  const posted = await hub.post(hub.event('Patient-open', [patient('p-1', { name: [{ family: MARK }] })], { id: 'open-1' }));
  assert.equal(posted.status, 202, posted.text);
  // A refused event: the id reused for another event.
  const reused = await hub.post(hub.event('Patient-open', [patient('p-2', { name: [{ family: MARK }] })], { id: 'open-1' }));
  assert.equal(reused.status, 409);
  await ehr.nextEvent('SyncError');
  await ehr.nextEvent('SyncError', 6000); // the silent app, after the 2 s ack timeout

  // Until the EHR has answered both SyncErrors (its answers may still be on their way).
  const t = await until(hub, (f) => f.filter((x) => x.fact === 'answered' && x.event === 'SyncError').length === 2);
  const facts = t.facts;
  assert.ok(!JSON.stringify(t).includes('MARKED'), 'a resource body in the timeline');
  assert.deepEqual(
    facts.map((f) => f.seq),
    facts.map((_, i) => i + 1),
    'numbered 1, 2, 3… in order',
  );
  assert.equal(t.next, facts.at(-1).seq);
  const strip = ({ seq, at, latencyMs, id, versionId, diagnostics, ...rest }) => rest;
  // Recipients in the hub's order (by endpoint): sorted here.
  const story = facts.filter((f) => !['subscribed', 'connected'].includes(f.fact)).map(strip).map((f) => (f.to ? { ...f, to: [...f.to].sort() } : f));
  assert.deepEqual(story.slice(0, 2), [
    { fact: 'event', event: 'Patient-open', anchor: 'Patient/p-1' },
    { fact: 'notified', event: 'Patient-open', to: ['EHR', 'Silent', 'Viewer'] },
  ]);
  // The refusal, wherever the answers put it (they race with the second POST).
  const refused = story.filter((f) => f.fact === 'eventRefused');
  assert.equal(refused.length, 1);
  assert.deepEqual({ ...refused[0], reason: undefined }, { fact: 'eventRefused', event: 'Patient-open', status: 409, reason: undefined });
  assert.match(refused[0].reason, /already used by another event/);
  const answers = story.filter((f) => f.fact === 'answered');
  assert.deepEqual(
    answers.map((a) => [a.subscriber, a.event, a.status]).sort(),
    [
      ['EHR', 'Patient-open', 200],
      ['EHR', 'SyncError', 200],
      ['EHR', 'SyncError', 200],
      ['Viewer', 'Patient-open', 409],
    ],
  );
  for (const a of facts.filter((f) => f.fact === 'answered')) assert.ok(Number.isInteger(a.latencyMs) && a.latencyMs >= 0 && a.latencyMs < 2000, JSON.stringify(a));
  const syncErrors = facts.filter((f) => f.fact === 'syncError');
  assert.deepEqual(
    syncErrors.map((s) => [s.subscriber, s.aboutId, s.aboutEvent, s.source, s.cause]),
    [
      ['Viewer', 'open-1', 'Patient-open', 'hub', 'refused'],
      ['Silent', 'open-1', 'Patient-open', 'hub', 'unresponsive'],
    ],
  );
  assert.match(syncErrors[0].diagnostics, /Viewer refused to follow Patient-open/);
  const silentEnd = facts.filter((f) => f.subscriber === 'Silent' && ['timedOut', 'unsubscribed'].includes(f.fact)).map(strip);
  assert.deepEqual(silentEnd, [
    { fact: 'timedOut', subscriber: 'Silent', event: 'Patient-open' },
    { fact: 'unsubscribed', subscriber: 'Silent', reason: 'unresponsive: no answer within 2 s' },
  ]);
  // Each SyncError is followed by its notification to the EHR.
  const i = facts.indexOf(syncErrors[0]);
  assert.deepEqual([facts[i + 1].fact, facts[i + 1].id, facts[i + 1].to], ['notified', syncErrors[0].id, ['EHR']]);

  // A reader polling with `since` gets only what is new; closes carry their codes.
  viewer.ws.close(1000);
  await viewer.closed;
  const newer = await (async () => {
    for (let n = 0; n < 100; n++) {
      const page = await timeline(hub, `?since=${t.next}`);
      if (page.facts.length) return page;
      await new Promise((r) => setTimeout(r, 30));
    }
    assert.fail('the close never reached the timeline');
  })();
  assert.deepEqual(newer.facts.map(({ seq, at, ...f }) => f), [{ fact: 'closed', subscriber: 'Viewer', code: 1000 }]);
  assert.equal(newer.facts[0].seq, t.next + 1);

  // Stored with the topic: the same facts after a restart, and numbering goes on.
  await hub.restart();
  const again = await timeline(hub);
  assert.deepEqual(again.facts.slice(0, facts.length), facts);
  await hub.post(hub.event('Patient-open', [patient('p-3')], { id: 'open-3' }));
  const last = await timeline(hub, `?since=${newer.facts[0].seq}`);
  // The restart cut the EHR's socket: found gone when the topic loaded, it is a close (1006)
  // and a SyncError naming it (sent to nobody: no one else follows SyncErrors).
  const n = newer.facts[0].seq;
  assert.deepEqual(
    last.facts.map((f) => [f.seq, f.fact, f.subscriber, f.code ?? f.aboutId ?? f.id, f.cause]),
    [
      [n + 1, 'closed', 'EHR', 1006, undefined],
      [n + 2, 'syncError', 'EHR', 'open-1', 'connection-lost'],
      [n + 3, 'event', undefined, 'open-3', undefined],
    ],
  );
});

test('timeline: TIMELINE_LIMIT keeps the newest facts; since and limit page through them; bad parameters are 400; other methods 405; an unused topic has none', async () => {
  const hub = await start({ TIMELINE_LIMIT: '5' });
  const app = await hub.join('Patient-open', { name: 'App' });
  for (let i = 1; i <= 4; i++) assert.equal((await hub.post(hub.event('Patient-open', [patient(`p${i}`)], { id: `e${i}` }))).status, 202);
  await app.nextEvent('Patient-open');
  // 2 + 4 × 3 facts (event, notified, answered) = 14: the answers may still be in flight.
  const t = await until(hub, (f) => f.at(-1)?.seq === 14);
  assert.deepEqual(
    t.facts.map((f) => f.seq),
    [10, 11, 12, 13, 14],
  );
  // (Which facts 10-14 are depends on how answers and the next POSTs interleave: not asserted.)
  const page = await timeline(hub, '?since=10&limit=2');
  assert.deepEqual(
    page.facts.map((f) => f.seq),
    [11, 12],
  );
  assert.equal(page.next, 12);
  assert.deepEqual((await timeline(hub, '?since=14')).facts, []);
  assert.equal((await timeline(hub, '?since=14')).next, 14);
  for (const q of ['?since=-1', '?since=x', '?limit=1001', '?limit=1.5']) {
    const r = await hub.request(`/${hub.topic}/timeline${q}`);
    assert.equal(r.status, 400, q);
    assert.equal(r.json.resourceType, 'OperationOutcome');
    assert.match(r.json.issue[0].diagnostics, /is not a whole number/);
  }
  const post = await hub.request(`/${hub.topic}/timeline`, { method: 'POST', body: '{}' });
  assert.equal(post.status, 405);
  assert.equal(post.headers.get('allow'), 'GET, OPTIONS');
  const unused = await timeline(hub, '', { topic: uid('unused') });
  assert.deepEqual(unused.facts, []);
});

test('timeline: answers to a fan-out, stored grouped, read back one fact each: every page from any point equals the full read, across a restart, and TIMELINE_LIMIT cuts inside a group', async () => {
  const hub = await start({});
  const names = ['A', 'B', 'C', 'D'];
  const apps = await Promise.all(names.map((name) => hub.join('Patient-open', { name })));
  for (let i = 1; i <= 3; i++) assert.equal((await hub.post(hub.event('Patient-open', [patient(`p${i}`)], { id: `g${i}` }))).status, 202);
  for (const app of apps) for (let i = 1; i <= 3; i++) await app.nextEvent('Patient-open');
  const answered = (f) => f.filter((x) => x.fact === 'answered');
  const full = (await until(hub, (f) => answered(f).length === 12)).facts;
  for (const a of answered(full)) {
    assert.deepEqual(Object.keys(a), ['seq', 'at', 'fact', 'subscriber', 'id', 'event', 'status', 'latencyMs']);
    assert.ok(names.includes(a.subscriber) && /^g[123]$/.test(a.id) && a.status === 200 && a.latencyMs >= 0, JSON.stringify(a));
  }
  for (const id of ['g1', 'g2', 'g3']) {
    assert.deepEqual(answered(full).filter((a) => a.id === id).map((a) => a.subscriber).sort(), names, `each app answered ${id} once`);
  }
  assert.deepEqual(full.map((f) => f.seq), full.map((_, i) => i + 1));
  const times = full.map((f) => Date.parse(f.at));
  assert.deepEqual(times, [...times].sort((a, b) => a - b), 'in the order they happened');
  // Stored grouped (what makes recording cheap): the topic's SQLite file on disk holds answers
  // as groups, fewer bytes than the facts they expand to.
  const rows = storedTimeline(hub.persist);
  assert.ok(rows.some((r) => r.includes('{"fact":"answers",')), `no group stored: ${rows.join('\n')}`);
  assert.ok(rows.join('').length < JSON.stringify(full).length);
  for (let since = 0; since < full.length; since++) {
    assert.deepEqual((await timeline(hub, `?since=${since}&limit=2`)).facts, full.slice(since, since + 2), `since=${since}`);
  }
  await hub.restart();
  assert.deepEqual((await timeline(hub)).facts, full, 'the same facts read back after a restart');

  const small = await start({ TIMELINE_LIMIT: '5' });
  const three = await Promise.all(['A', 'B', 'C'].map((name) => small.join('Patient-open', { name })));
  assert.equal((await small.post(small.event('Patient-open', [patient('p1')], { id: 'h1' }))).status, 202);
  for (const app of three) await app.nextEvent('Patient-open');
  // 3 subscribed + 3 connected + event + notified + 3 answered = 11: the last 5 start inside
  // the group of answers.
  const kept = await until(small, (f) => f.at(-1)?.seq === 11);
  assert.deepEqual(kept.facts.map((f) => f.seq), [7, 8, 9, 10, 11]);
  assert.deepEqual(kept.facts.slice(2).map((f) => f.fact), ['answered', 'answered', 'answered']);
});

test('timeline: a write of more facts than a row may hold is split over rows, each within the row limit, and read back whole', async () => {
  // STORAGE_ROW_LIMIT_BYTES 3,000: timeline rows of at most 1,500 bytes of facts. Eight apps
  // named with 250 characters make each event's notified fact and each group of answers about
  // 2 KB, and a write holding both about 4 KB.
  const hub = await start({ STORAGE_ROW_LIMIT_BYTES: '3000' });
  const names = Array.from({ length: 8 }, (_, i) => `${i}`.padEnd(250, 'n'));
  const apps = await Promise.all(names.map((name) => hub.join('Patient-open', { name })));
  for (let i = 1; i <= 3; i++) assert.equal((await hub.post(hub.event('Patient-open', [patient(`p${i}`)], { id: `r${i}` }))).status, 202);
  for (const app of apps) for (let i = 1; i <= 3; i++) await app.nextEvent('Patient-open');
  const full = (await until(hub, (f) => f.filter((x) => x.fact === 'answered').length === 24)).facts;
  assert.deepEqual(full.map((f) => f.seq), full.map((_, i) => i + 1));
  assert.deepEqual(full.filter((f) => f.fact === 'notified').map((f) => f.to.length), [8, 8, 8]);
  const rows = storedTimeline(hub.persist);
  assert.ok(rows.length > 3 && rows.every((r) => Buffer.byteLength(r) <= 3000), rows.map((r) => Buffer.byteLength(r)).join(', '));
  await hub.restart();
  assert.deepEqual((await timeline(hub)).facts, full);
});

test('timeline: the roster scope rules (a token for this topic that may read SyncError); events and subscriptions name the token subject and client', async () => {
  const hub = await start(JWT_BINDINGS);
  const topic = uid('topic');
  hub.topic = topic;
  const token = jwt({ 'hub.topic': topic, client_id: 'pacs-viewer', sub: 'dr-who' });
  await hub.join('Patient-open', { name: 'Viewer', token });
  assert.equal((await hub.post(hub.event('Patient-open', [patient('p1')], { id: 'e1' }), { token })).status, 202);
  const get = (t) => hub.request(`/${topic}/timeline`, { headers: t ? { authorization: `Bearer ${t}` } : {} });
  assert.equal((await get()).status, 401);
  const other = await get(jwt({ 'hub.topic': uid('other') }));
  assert.equal(other.status, 403);
  const noSyncError = await get(jwt({ 'hub.topic': topic, scope: 'fhircast/Patient-open.read fhircast/Patient-open.write' }));
  assert.equal(noSyncError.status, 403);
  assert.match(noSyncError.json.issue[0].diagnostics, /fhircast\/SyncError\.read/);
  const ok = await get(jwt({ 'hub.topic': topic, scope: 'fhircast/SyncError.read' }));
  assert.equal(ok.status, 200, ok.text);
  const by = Object.fromEntries(ok.json.facts.filter((f) => f.by).map((f) => [f.fact, f.by]));
  assert.deepEqual(by, { subscribed: { subject: 'dr-who', client: 'pacs-viewer' }, event: { subject: 'dr-who', client: 'pacs-viewer' } });
});
