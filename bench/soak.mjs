// Soak: steady traffic on many topics with subscribers joining and leaving, for a bounded time,
// against the hub in workerd (Miniflare, 127.0.0.1). Prints, at every interval, the workerd
// process's resident memory and the delivery latency (post sent -> notification received by a
// steady subscriber), then a verdict: memory and latency flat, and no event lost.
//
//   make soak                                   # defaults below
//   SOAK_SECONDS=600 SOAK_TOPICS=100 SOAK_RATE=80 node bench/soak.mjs
//
// Flat means: the last interval's wasm linear memory (the Rust code's heap: every topic's
// state, subscriptions, ids; read from the DEBUG_MEMORY=1 header) is at most 1 MB above the
// first measured interval after warm-up, its p95 latency at most twice the warm-up p95 plus 25 ms, and
// workerd's CPU time per event at most 1.5 times the warm-up's plus 0.5 ms (CPU per event is
// the figure a busy machine does not distort; latency is). The exit status is non-zero when
// the verdict is not flat or any event was lost.
//
// workerd's RSS is printed (and its growth per request) but not judged: workerd under Miniflare
// grows ~15 KB of RSS per request even for a JS Worker that only answers "ok" (measured by
// bench/soak-floor.mjs; RELIABILITY.md), so RSS growth there is not the hub's.
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { startHub, Subscriber, patient, report, reportRef, bundle, observationPut, uid } from '../tests/hub/harness.mjs';

const SECONDS = Number(process.env.SOAK_SECONDS ?? 180);
const TOPICS = Number(process.env.SOAK_TOPICS ?? 100);
const RATE = Number(process.env.SOAK_RATE ?? 60); // events per second, over all topics
const INTERVAL = Number(process.env.SOAK_INTERVAL ?? 15); // seconds between reports
const CHURN = Number(process.env.SOAK_CHURN ?? 4); // joins (and leaves) per second
// 0: churning subscribers subscribe and unsubscribe without ever opening their WebSocket (to
// tell memory held for sockets from memory held for subscriptions).
const CHURN_CONNECT = process.env.SOAK_CHURN_CONNECT !== '0';

// Each topic keeps SOAK_DEDUP request ids (the hub's default is 1,024): small, so every topic's
// state is full within the warm-up and growth after it is a leak, not a window filling up.
const DEDUP = process.env.SOAK_DEDUP ?? '8';
const hub = await startHub({ bindings: { DEBUG_MEMORY: '1', DEDUP_WINDOW: DEDUP } });
/** The wasm linear memory (MB), from the Worker's debug header. */
const wasmMb = async () =>
  Number((await fetch(`${hub.base}/.well-known/fhircast-configuration`)).headers.get('x-fhircast-wasm-bytes')) / 2 ** 20;
/** workerd's CPU time so far (user + system), in ms: a per-event cost that machine load does not inflate. */
const cpuMs = () => hub.workerdPids().reduce((sum, pid) => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return sum + ((Number(f[11]) + Number(f[12])) * 1000) / 100; // utime, stime in 1/100 s ticks
}, 0);
const rssMb = () => hub.workerdPids().reduce((sum, pid) => {
  const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+) kB/);
  return sum + (m ? Number(m[1]) / 1024 : 0);
}, 0);

/** Per topic: two steady subscribers (one also gets SyncErrors), the events posted, a report. */
const topics = [];
for (let i = 0; i < TOPICS; i++) {
  const topic = uid(`soak${i}`);
  const steady = await Promise.all([
    hub.join('Patient-open,DiagnosticReport-open,DiagnosticReport-update,SyncError', { topic, name: `steady-${i}-a` }),
    hub.join('Patient-open,DiagnosticReport-open,DiagnosticReport-update', { topic, name: `steady-${i}-b` }),
  ]);
  topics.push({ i, topic, steady, posted: [], version: null, n: 0 });
}

const sentAt = new Map(); // event id -> post time (ms)
let latencies = [];
for (const t of topics) {
  for (const s of t.steady) {
    s.ws.on('message', (data) => {
      const m = JSON.parse(data.toString());
      const t0 = sentAt.get(m.id);
      if (t0 !== undefined && s === t.steady[0]) latencies.push(performance.now() - t0);
    });
  }
}

let posts = 0;
let postErrors = 0;
const refused = {}; // status -> count, for posts not answered 202
let syncErrors = 0;
let joins = 0;
let leaves = 0;
let churnErrors = 0;

/** One event on topic t: Patient-opens, a report opened now and then, and updates to it. */
async function postOne(t) {
  const k = t.n++;
  let ev;
  // A user moving among a dozen patients and a few reports (open contexts stay bounded, as in
  // real use); every update adds or replaces one of 20 observations.
  if (k % 10 === 1) ev = hub.event('DiagnosticReport-open', [report(`r${k % 40}`), patient(`p${k % 12}`)], { topic: t.topic });
  else if (t.version && k % 3 === 0) ev = hub.event('DiagnosticReport-update', [reportRef(`r${t.report}`), bundle([observationPut(`o${k % 20}`)])], { topic: t.topic, versionId: t.version });
  else ev = hub.event('Patient-open', [patient(`p${k % 12}`)], { topic: t.topic });
  sentAt.set(ev.id, performance.now());
  const r = await hub.post(ev);
  posts++;
  if (r.status !== 202) {
    postErrors++;
    refused[r.status] = (refused[r.status] ?? 0) + 1;
    if (refused[r.status] <= 3) console.log(`  post ${ev.event['hub.event']} answered ${r.status}: ${r.text.slice(0, 200)}`);
    return;
  }
  t.posted.push(ev.id);
  if (ev.event['hub.event'] === 'DiagnosticReport-open') t.report = k % 40;
  if (r.json['context.versionId'] && ev.event['hub.event'] !== 'Patient-open') t.version = r.json['context.versionId'];
}

/** A subscriber that joins a random topic, takes the replay, stays a moment, and leaves. */
async function churnOne() {
  const t = topics[Math.floor(Math.random() * topics.length)];
  try {
    if (!CHURN_CONNECT) {
      const r = await hub.subscribe({ topic: t.topic, events: 'Patient-open', name: 'churn' });
      joins++;
      await sleep(200 + Math.random() * 2000);
      const u = await hub.unsubscribe(r.json['hub.channel.endpoint'], { topic: t.topic });
      if (r.status !== 202 || u.status !== 202) churnErrors++;
      leaves++;
      return;
    }
    const s = await hub.join('Patient-open', { topic: t.topic, name: 'churn' });
    joins++;
    await sleep(200 + Math.random() * 2000);
    const u = await hub.unsubscribe(s.endpoint, { topic: t.topic });
    if (u.status !== 202) churnErrors++;
    leaves++;
    await s.next((m) => m['hub.mode'] === 'denied', 5000).catch(() => churnErrors++);
    s.ws.terminate();
  } catch {
    churnErrors++;
  }
}

const pct = (xs, p) => (xs.length ? xs[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))] : NaN);
const rows = [];
const start = performance.now();
let stop = false;
// Publishers: one request at a time per topic (so each topic's order is defined), paced to RATE.
const publisher = (async () => {
  let next = performance.now();
  let k = 0;
  const inFlight = new Set();
  while (!stop) {
    const t = topics[k++ % topics.length];
    if (!t.busy) {
      t.busy = true;
      const p = postOne(t).catch((e) => {
        postErrors++;
        const why = `error ${e.cause?.code ?? e.message}`;
        refused[why] = (refused[why] ?? 0) + 1;
      }).finally(() => ((t.busy = false), inFlight.delete(p)));
      inFlight.add(p);
    }
    next += 1000 / RATE;
    const wait = next - performance.now();
    if (wait > 0) await sleep(wait);
  }
  await Promise.all(inFlight);
})();
const churner = (async () => {
  const pending = new Set();
  while (!stop && CHURN > 0) {
    const p = churnOne().finally(() => pending.delete(p));
    pending.add(p);
    await sleep(1000 / CHURN);
  }
  await Promise.all(pending);
})();

console.log(`soak: ${TOPICS} topics x 2 steady subscribers, ${RATE} events/s, ${CHURN} joins+leaves/s, ${DEDUP} request ids kept per topic, ${SECONDS} s, report every ${INTERVAL} s`);
console.log('   t(s)  rss(MB)  wasm(MB)  events  cpu(ms/event)  p50(ms)  p95(ms)  p99(ms)  joins  leaves  errors');
let cpuBefore = cpuMs();
let postsBefore = 0;
while (performance.now() - start < SECONDS * 1000) {
  await sleep(INTERVAL * 1000);
  const lat = latencies.sort((a, b) => a - b);
  latencies = [];
  const cpuNow = cpuMs();
  const cpu = (cpuNow - cpuBefore) / Math.max(1, posts - postsBefore);
  [cpuBefore, postsBefore] = [cpuNow, posts];
  const row = { t: Math.round((performance.now() - start) / 1000), rss: rssMb(), wasm: await wasmMb(), requests: posts + joins + leaves, events: lat.length, cpu, p50: pct(lat, 50), p95: pct(lat, 95), p99: pct(lat, 99) };
  rows.push(row);
  console.log(`${String(row.t).padStart(7)}  ${row.rss.toFixed(1).padStart(7)}  ${row.wasm.toFixed(2).padStart(8)}  ${String(row.events).padStart(6)}  ${row.cpu.toFixed(2).padStart(13)}  ${row.p50.toFixed(1).padStart(7)}  ${row.p95.toFixed(1).padStart(7)}  ${row.p99.toFixed(1).padStart(7)}  ${String(joins).padStart(5)}  ${String(leaves).padStart(6)}  ${postErrors + churnErrors}`);
}
stop = true;
await Promise.all([publisher, churner]);
await sleep(1500);

// Loss and order: every steady subscriber has every event posted to its topic, in order.
let lost = 0;
let disorder = 0;
for (const t of topics) {
  for (const s of t.steady) {
    const want = new Set(t.posted);
    const got = s.all.filter((m) => m.event && want.has(m.id)).map((m) => m.id);
    lost += t.posted.length - new Set(got).size;
    if (got.join() !== t.posted.slice(0, got.length).join()) disorder++;
    syncErrors += s.all.filter((m) => m.event?.['hub.event'] === 'SyncError').length;
  }
}
const base = rows[Math.min(1, rows.length - 1)]; // the first interval is warm-up
const last = rows.at(-1);
const memFlat = last.wasm <= base.wasm + 1;
// The second half's growth against the first's: a state still filling slows down, a leak does not.
const mid = rows[Math.floor((rows.length + 1) / 2)] ?? last;
const rssPerRequest = (1024 * (last.rss - base.rss)) / Math.max(1, last.requests - base.requests);
const latFlat = last.p95 <= base.p95 * 2 + 25;
const cpuFlat = last.cpu <= base.cpu * 1.5 + 0.5;
console.log(`posted ${posts} (${postErrors} not accepted${postErrors ? ` ${JSON.stringify(refused)}` : ''}), churn ${joins} joins / ${leaves} leaves (${churnErrors} errors), lost ${lost}, out of order ${disorder}, SyncErrors ${syncErrors}`);
console.log(`memory (wasm linear memory): ${base.wasm.toFixed(2)} MB after warm-up -> ${mid.wasm.toFixed(2)} MB at ${mid.t} s -> ${last.wasm.toFixed(2)} MB at the end (${memFlat ? 'flat' : 'GROWING'}: at most 1 MB more)`);
console.log(`workerd RSS (not judged; a JS Worker answering "ok" grows ~15 KB per request, bench/soak-floor.mjs): ${base.rss.toFixed(1)} -> ${last.rss.toFixed(1)} MB, ${rssPerRequest.toFixed(1)} KB per request`);
console.log(`latency p95: ${base.p95.toFixed(1)} ms after warm-up -> ${last.p95.toFixed(1)} ms at the end (${latFlat ? 'flat' : 'GROWING'})`);
console.log(`workerd CPU per event: ${base.cpu.toFixed(2)} ms after warm-up -> ${last.cpu.toFixed(2)} ms at the end (${cpuFlat ? 'flat' : 'GROWING'})`);
const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
console.log(`machine load average at the end: ${load} (latency includes waiting for a CPU; CPU per event does not)`);
const ok = memFlat && latFlat && cpuFlat && lost === 0 && disorder === 0 && postErrors === 0;
console.log(`VERDICT: ${ok ? 'flat' : 'NOT flat'} (memory ${memFlat ? 'flat' : 'growing'}, latency ${latFlat ? 'flat' : 'growing'}, CPU per event ${cpuFlat ? 'flat' : 'growing'}, ${lost} lost, ${disorder} out of order, ${postErrors} refused posts)`);
for (const t of topics) for (const s of t.steady) s.ws.terminate();
await hub.stop();
process.exit(ok ? 0 : 1);
