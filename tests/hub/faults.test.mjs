// Fault injection against the hub in workerd: a subscriber whose TCP connection is cut without
// a Close frame, a subscriber that stops reading, a flood of subscribe/unsubscribe on one
// topic, and the workerd process SIGKILLed in the middle of a burst of events. For each: what
// the other subscribers see (SyncError where the spec calls for one), that the hub keeps
// serving, that subscribers which stay connected lose no event and see them in order, and
// (kill) that every event answered 2xx before the kill is in the hub's state afterwards.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startHub, Subscriber, patient, report, reportRef, bundle, observationPut, uid, syncErrorDetails } from './harness.mjs';
import { upgradeRefusal, sleep } from './wsutil.mjs';

// The default 10 s ack timeout, so a busy machine cannot make a healthy subscriber look
// unresponsive; the stalled-reader test has its own hub with a short one.
let hub;
let stallHub;
before(async () => ([hub, stallHub] = await Promise.all([startHub(), startHub({ bindings: { ACK_TIMEOUT_SECONDS: '3' } })])));
after(async () => Promise.all([hub?.stop(), stallHub?.stop()]));

const ids = (s, name = 'Patient-open') => s.all.filter((m) => m.event?.['hub.event'] === name).map((m) => m.id);

/** Waits until `s` has received `n` notifications of `name` (or fails naming what it has). */
async function received(s, n, name = 'Patient-open', timeout = 20_000) {
  const until = Date.now() + timeout;
  while (ids(s, name).length < n) {
    if (Date.now() > until) throw new Error(`${ids(s, name).length} of ${n} ${name} received`);
    await sleep(20);
  }
  return ids(s, name);
}

/** Posts `n` Patient-opens one after another; returns their ids (each answered 202). */
async function burst(topic, n, { tag = 'p', extra = () => ({}), during, on = hub } = {}) {
  const sent = [];
  for (let i = 0; i < n; i++) {
    if (during && i === during.at) await during.run();
    const ev = on.event('Patient-open', [patient(`${tag}${i}`, extra(i))], { topic });
    const r = await on.post(ev);
    assert.equal(r.status, 202, r.text);
    sent.push(ev.id);
  }
  return sent;
}

test('req85 req84 req88 neg23 (fault: TCP cut): a subscriber whose connection drops without a Close frame is reported by a SyncError; the others lose nothing', async () => {
  const topic = uid();
  const watcher = await hub.join('Patient-open,SyncError', { topic, name: 'Watcher' });
  const steady = await hub.join('Patient-open', { topic, name: 'Steady' });
  const victim = await hub.join('Patient-open', { topic, name: 'Victim' });
  // The cut comes in the middle of a burst: the TCP socket is destroyed, no Close frame sent.
  const sent = await burst(topic, 40, { during: { at: 15, run: async () => victim.ws._socket.destroy() } });
  assert.deepEqual(await received(watcher, 40), sent, 'the watcher got every event, in order');
  assert.deepEqual(await received(steady, 40), sent, 'the other subscriber got every event, in order');
  const syncErrors = async () => watcher.all.filter((m) => m.event?.['hub.event'] === 'SyncError');
  const err = syncErrorDetails(await watcher.nextEvent('SyncError', 10_000));
  assert.equal(err.subscriber, 'Victim', 'req 92: the SyncError names the subscriber at fault');
  assert.match(err.diagnostics, /Victim lost its connection to the hub \(WebSocket close code 10\d\d\)/);
  assert.doesNotMatch(err.diagnostics, /code 100[01]\)/, 'req 86: never for 1000/1001');
  assert.ok(sent.includes(err.eventId) || err.eventId === sent.at(-1), 'about an event of the burst');
  assert.ok(await steady.nothing((m) => m.event?.['hub.event'] === 'SyncError', 300), 'req 88: only SyncError subscribers get it');
  await sleep(300);
  assert.equal((await syncErrors()).length, 1, 'one SyncError for one lost connection');
  assert.equal((await upgradeRefusal(victim.endpoint)).status, 404, 'neg 23: the lost socket ended its subscription');
  console.log(`TCP cut: 40 events, 40 received by each of 2 subscribers, in order; 1 SyncError: "${err.diagnostics}"`);
  // The hub keeps serving: a newcomer gets the replay of the last event (req 44), live events flow.
  const late = await hub.join('Patient-open', { topic, name: 'Late' });
  assert.equal((await late.nextEvent('Patient-open')).id, sent.at(-1));
  const more = await burst(topic, 5, { tag: 'q' });
  assert.deepEqual((await received(watcher, 45)).slice(40), more);
  assert.deepEqual((await received(late, 6)).slice(1), more);
  for (const s of [watcher, steady, late]) s.ws.close();
});

test('req85 req87 req46 (fault: stops reading): a subscriber that stops reading is reported and unsubscribed after the ack timeout; the hub is not held up', async () => {
  const topic = uid();
  const watcher = await stallHub.join('Patient-open,SyncError', { topic, name: 'Watcher' });
  const steady = await stallHub.join('Patient-open', { topic, name: 'Steady' });
  const stuck = await stallHub.join('Patient-open', { topic, name: 'Stuck' });
  stuck.ws._socket.pause(); // TCP level: nothing more is read, so nothing is answered
  // 30 events of ~20 KB: more than the socket buffers hold, so the hub's sends to Stuck back up.
  const t0 = Date.now();
  const sent = await burst(topic, 30, { on: stallHub, extra: () => ({ text: { status: 'generated', div: `<div>${'x'.repeat(20_000)}</div>` } }) });
  const burstMs = Date.now() - t0;
  assert.deepEqual(await received(watcher, 30), sent, 'the watcher got every event, in order');
  assert.deepEqual(await received(steady, 30), sent, 'the other subscriber got every event, in order');
  const err = syncErrorDetails(await watcher.nextEvent('SyncError', 20_000));
  assert.equal(err.subscriber, 'Stuck');
  assert.match(err.diagnostics, /Stuck did not answer .* within 3 s/);
  assert.equal(err.eventId, sent[0], 'about the first event it owed an answer to');
  // req 87: unsubscribed after the SyncError about its unresponsiveness (N = 1).
  const deadline = Date.now() + 10_000;
  let gone;
  while (Date.now() < deadline && (gone = await stallHub.unsubscribe(stuck.endpoint, { topic })).status !== 404) await sleep(100);
  assert.equal(gone.status, 404, 'the silent subscriber was dropped');
  await sleep(300);
  assert.equal(watcher.all.filter((m) => m.event?.['hub.event'] === 'SyncError').length, 1, 'one SyncError, not one per missed event');
  // When it reads again, what it gets ends with the denial (req 46).
  stuck.ws._socket.resume();
  const denial = await stuck.next((m) => m['hub.mode'] === 'denied', 10_000);
  assert.equal(denial['hub.topic'], topic);
  assert.ok(ids(stuck).every((id, i) => id === sent[i]), 'what it did receive is in order, with no gap');
  // And the hub serves everyone else as before.
  const more = await burst(topic, 3, { tag: 'q', on: stallHub });
  assert.deepEqual((await received(steady, 33)).slice(30), more);
  console.log(`stops reading: 30 x 20 KB posted in ${burstMs} ms with one subscriber stalled`);
  for (const s of [watcher, steady, stuck]) s.ws.terminate();
});

test('req35 req53 req54 req41 (fault: flood): 240 subscribe/unsubscribe cycles on one topic while events flow; steady subscribers lose nothing', async () => {
  const topic = uid();
  const watcher = await hub.join('Patient-open,SyncError', { topic, name: 'Watcher' });
  const steady = await hub.join('Patient-open', { topic, name: 'Steady' });
  const stats = { subscribed: 0, connected: 0, resubscribed: 0, unsubscribed: 0, denials: 0, endpoints: new Set() };
  const cycle = async (i) => {
    const events = ['Patient-open', 'Patient-open,Patient-close', 'Patient-close', 'Patient-open,SyncError'][i % 4];
    const r = await hub.subscribe({ topic, events, name: `flood-${i}` });
    assert.equal(r.status, 202, r.text);
    stats.subscribed++;
    let endpoint = r.json['hub.channel.endpoint'];
    assert.ok(!stats.endpoints.has(endpoint), 'req 41: every endpoint is new');
    stats.endpoints.add(endpoint);
    let s;
    if (i % 3 !== 2) {
      s = await Subscriber.connect(endpoint);
      hub.sockets.add(s.ws);
      assert.equal((await s.next(undefined, 15_000))['hub.mode'], 'subscribe');
      stats.connected++;
    }
    if (i % 5 === 0) {
      const again = await hub.subscribe({ topic, events: 'Patient-open,Patient-close', name: `flood-${i}`, endpoint });
      assert.equal(again.status, 202, again.text);
      assert.equal(again.json['hub.channel.endpoint'], endpoint, 'req 35: a re-subscribe keeps its endpoint');
      stats.resubscribed++;
    }
    const u = await hub.unsubscribe(endpoint, { topic });
    assert.equal(u.status, 202, u.text);
    stats.unsubscribed++;
    if (s) {
      const denial = await s.next((m) => m['hub.mode'] === 'denied', 15_000);
      assert.equal(denial['hub.reason'], 'unsubscribed');
      stats.denials++;
      s.ws.terminate();
    }
    assert.equal((await hub.unsubscribe(endpoint, { topic })).status, 404, 'req 54: an endpoint is never reused');
  };
  let next = 0;
  const flood = Promise.all(Array.from({ length: 8 }, async () => {
    while (next < 240) await cycle(next++);
  }));
  const sent = await burst(topic, 60);
  await flood;
  assert.deepEqual(await received(watcher, 60), sent, 'the watcher got every event, in order');
  assert.deepEqual(await received(steady, 60), sent, 'the steady subscriber got every event, in order');
  assert.ok(await watcher.nothing((m) => m.event?.['hub.event'] === 'SyncError', 2500), 'no SyncError: every flood subscriber left properly');
  assert.deepEqual([stats.subscribed, stats.unsubscribed, stats.denials], [240, 240, stats.connected]);
  const late = await hub.join('Patient-open', { topic, name: 'Late' });
  assert.equal((await late.nextEvent('Patient-open')).id, sent.at(-1), 'the topic still replays its context');
  console.log(`flood: ${JSON.stringify({ ...stats, endpoints: stats.endpoints.size })}`);
  for (const s of [watcher, steady, late]) s.ws.close();
});

test('req78 req80 req139 req44 (fault: SIGKILL): workerd killed mid-burst; every event answered 2xx before the kill is in its state after the restart', async () => {
  const k = await startHub();
  try {
    const topics = Array.from({ length: 4 }, () => uid());
    const subs = await Promise.all(topics.map((topic) => k.join('Patient-open,DiagnosticReport-update', { topic, name: 'Watcher' })));
    // Each topic: a report r1 open, then alternating Patient-opens and updates of r1 (not
    // current: non-current updates) adding one observation each, one request at a time. The
    // patients cycle through 16 ids: more distinct ones than the hub keeps open (64) would evict
    // r1 with its content, which is the limit working, not a lost update.
    const runs = topics.map((topic) => ({ topic, accepted: [], inFlight: null, obs: [], version: null, patients: [] }));
    for (const [n, run] of runs.entries()) {
      const r = await k.post(k.event('DiagnosticReport-open', [report('r1'), patient('p-r')], { topic: run.topic }));
      assert.equal(r.status, 202, r.text);
      run.version = r.json['context.versionId'];
      await subs[n].nextEvent('Patient-open'); // the open derived from it (req 97)
      run.from = subs[n].all.length;
    }
    let killed = false;
    const loop = async (run) => {
      for (let i = 0; !killed; i++) {
        const update = i % 2 === 1;
        const ev = update
          ? k.event('DiagnosticReport-update', [reportRef('r1'), bundle([observationPut(`o${i}`)])], { topic: run.topic, versionId: run.version })
          : k.event('Patient-open', [patient(`p${i % 16}`)], { topic: run.topic });
        run.inFlight = ev;
        let r;
        try {
          r = await k.post(ev);
        } catch {
          return; // the kill cut this request: its outcome is unknown
        }
        if (r.status !== 202) return; // answered by nobody: workerd is gone
        run.inFlight = null;
        run.accepted.push(ev);
        if (update) {
          run.version = r.json['context.versionId'];
          run.obs.push(`o${i}`);
        } else run.patients.push(`p${i % 16}`);
      }
    };
    const loops = Promise.all(runs.map(loop));
    await sleep(1500);
    killed = true;
    const pids = await k.sigkill();
    await loops;
    const total = runs.reduce((n, r) => n + r.accepted.length, 0);
    assert.ok(total >= 20, `${total} events were accepted before the kill`);
    for (const s of subs) {
      const gone = await Promise.race([s.closed, sleep(5000).then(() => null)]);
      assert.ok(gone, 'the subscriber saw its connection drop');
    }
    await k.start();
    let resentDuplicates = 0;
    for (const [n, run] of runs.entries()) {
      // What the subscriber received before the kill is an in-order prefix, with no gap, of
      // what the hub accepted (plus possibly the request the kill cut).
      const got = subs[n].all.slice(run.from).filter((m) => m.event).map((m) => m.id);
      const order = [...run.accepted.map((e) => e.id), ...(run.inFlight ? [run.inFlight.id] : [])];
      assert.deepEqual(got, order.slice(0, got.length), 'received in order, none skipped');
      // Every accepted request is remembered (req 139): sent again, it is a duplicate.
      for (const ev of run.accepted) {
        const again = await k.post(ev);
        assert.equal(again.status, 202, again.text);
        assert.equal(again.json.duplicate, true, `${ev.event['hub.event']} ${ev.id} survived the kill`);
        resentDuplicates++;
      }
      const cut = run.inFlight;
      // The current context is the last accepted open, or the one the kill cut if it landed.
      const cur = (await k.getContext(run.topic)).json;
      const lastPatient = run.patients.at(-1) ?? 'p-r';
      const cutPatient = cut?.event['hub.event'] === 'Patient-open' ? cut.event.context[0].resource.id : null;
      assert.ok([lastPatient, cutPatient].includes(cur.context[0].resource.id), `current ${cur.context[0].resource.id}, last accepted ${lastPatient}`);
      // r1's content holds every accepted update (and the cut one only if it landed): re-open
      // it to read its content.
      const reopen = await k.post(k.event('DiagnosticReport-open', [report('r1'), patient('p-r')], { topic: run.topic }));
      assert.equal(reopen.status, 202, reopen.text);
      const content = (await k.getContext(run.topic)).json.context.at(-1).resource.entry?.map((e) => e.resource.id) ?? [];
      const cutObs = cut?.event['hub.event'] === 'DiagnosticReport-update' ? cut.event.context[1].resource.entry[0].resource.id : null;
      assert.deepEqual(content.filter((o) => o !== cutObs).sort(), [...run.obs].sort(), 'every accepted update is applied, none twice');
      // A re-subscriber gets the replay (req 44) and live traffic resumes.
      const s = await k.join('Patient-open', { topic: run.topic });
      const live = k.event('Patient-open', [patient('after')], { topic: run.topic });
      assert.equal((await k.post(live)).status, 202);
      assert.equal((await s.nextEvent('Patient-open')).event.context[0].resource.id, 'p-r', 'replay of the reopened context');
      assert.equal((await s.nextEvent('Patient-open')).id, live.id);
      s.ws.close();
    }
    console.log(`SIGKILL: workerd ${pids.join(',')} killed after ${total} accepted events on ${topics.length} topics; ${resentDuplicates} found again after the restart, 0 lost`);
  } finally {
    await k.stop();
  }
});
