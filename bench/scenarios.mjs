// The measurements, each bounded in events and in seconds. Every function takes a target
// (loadgen.targetFor) and the server (for its workerd pid), and returns plain figures (ms).
import { randomUUID } from 'node:crypto';
import { Tracker, stats, eventBody } from './loadgen.mjs';
import { serverUsage } from './servers.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let roomSeq = 0;
const room = (what) => `bench-${what}-${process.pid}-${++roomSeq}`;

/**
 * Fan-out latency: one event at a time, from just before the POST to the moment the last of `n`
 * subscribers has it. Also the server's memory per subscriber (RSS before/after joining) and
 * events lost (not at every subscriber within `lossTimeoutMs`).
 */
export async function fanout(target, server, n, { events, seconds, lossTimeoutMs = 15000 }) {
  const tracker = new Tracker();
  const topic = room(`fanout${n}`);
  const rssBefore = serverUsage(server).rss;
  const subs = await target.join(topic, n, { onEvent: (m) => tracker.received(m.id) });
  await sleep(200);
  const rssAfter = serverUsage(server).rss;
  const timestamp = new Date().toISOString();
  const lat = [];
  let lost = 0;
  let refused = 0;
  const end = performance.now() + seconds * 1000;
  const cpu0 = serverUsage(server).cpuMs;
  // Warm-up: a few events not counted.
  for (let i = 0; i < events + 3 && performance.now() < end; i++) {
    const id = randomUUID();
    const body = eventBody(topic, { id, timestamp, patient: `p${i % 8}` });
    const done = tracker.expect(id, n);
    const t0 = performance.now();
    const res = await target.publish(topic, body);
    if (res.status >= 300) {
      refused++;
      tracker.forget(id);
      continue;
    }
    const t1 = await Promise.race([done, sleep(lossTimeoutMs).then(() => null)]);
    if (t1 === null) {
      lost++;
      tracker.forget(id);
      continue;
    }
    if (i >= 3) lat.push(t1 - t0);
  }
  // Answers still arriving after the last event are part of its cost.
  await sleep(Math.min(2000, 50 + n));
  const cpu = serverUsage(server).cpuMs - cpu0;
  const closedByServer = subs.filter((s) => s.closedByServer).length;
  for (const s of subs) s.close();
  await sleep(100);
  return {
    subscribers: n,
    serverCpuMsPerEvent: Math.round((cpu / Math.max(1, lat.length + 3)) * 1000) / 1000,
    latency: stats(lat),
    lost,
    refused,
    closedByServer,
    memPerSubscriberBytes: n >= 100 ? Math.round((rssAfter - rssBefore) / n) : undefined,
  };
}

/**
 * Sustained throughput: `topics` topics x `perTopic` subscribers; `concurrency` POSTs kept in
 * flight (round robin over the topics) for `seconds`, then up to 10 s to drain. Counts events
 * accepted (2xx), fully delivered and acked (every subscriber had it and sent its answer), and the
 * CPU time of the server's workerd and of this generator per delivered event.
 */
export async function throughput(target, server, { topics, perTopic, concurrency, seconds }) {
  const tracker = new Tracker();
  const names = Array.from({ length: topics }, () => room(`tput${topics}x${perTopic}`));
  const all = [];
  for (const t of names) all.push(...(await target.join(t, perTopic, { onEvent: (m) => tracker.received(m.id) })));
  await sleep(200);
  const timestamp = new Date().toISOString();
  let accepted = 0;
  let refused = 0;
  let delivered = 0;
  let lastDelivery = 0;
  const lat = [];
  const cpu0 = serverUsage(server).cpuMs;
  const gen0 = process.cpuUsage();
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  const inflight = new Set();
  let seq = 0;
  const one = async () => {
    const topic = names[seq++ % topics];
    const id = randomUUID();
    const done = tracker.expect(id, perTopic);
    const start = performance.now();
    const res = await target.publish(topic, eventBody(topic, { id, timestamp, patient: `p${seq % 8}` }));
    if (res.status >= 300) {
      refused++;
      tracker.forget(id);
      return;
    }
    accepted++;
    const t = await done;
    if (t) {
      delivered++;
      lastDelivery = t;
      lat.push(t - start);
    }
  };
  while (performance.now() < end) {
    while (inflight.size < concurrency) {
      const p = one().finally(() => inflight.delete(p));
      inflight.add(p);
    }
    await Promise.race(inflight);
  }
  const sentBy = performance.now();
  await Promise.race([Promise.allSettled([...inflight]), sleep(10000)]);
  const elapsed = (Math.max(lastDelivery, sentBy) - t0) / 1000;
  const cpu = serverUsage(server).cpuMs - cpu0;
  const gen = process.cpuUsage(gen0);
  const genMs = (gen.user + gen.system) / 1000;
  const closedByServer = all.filter((s) => s.closedByServer).length;
  for (const s of all) s.close();
  await sleep(100);
  const undelivered = tracker.pending.size;
  return {
    topics,
    subscribersPerTopic: perTopic,
    concurrency,
    seconds: Math.round(elapsed * 100) / 100,
    acceptedPerSec: Math.round(accepted / elapsed),
    deliveredPerSec: Math.round(delivered / elapsed),
    accepted,
    delivered,
    undelivered,
    refused,
    closedByServer,
    latency: stats(lat),
    serverCpuMsPerEvent: Math.round((cpu / Math.max(1, delivered)) * 1000) / 1000,
    serverCpuCores: Math.round((cpu / (elapsed * 1000)) * 100) / 100,
    wallMsPerEvent: Math.round(((elapsed * 1000) / Math.max(1, delivered)) * 1000) / 1000,
    generatorCpuMsPerEvent: Math.round((genMs / Math.max(1, delivered)) * 1000) / 1000,
    generatorCpuCores: Math.round((genMs / (elapsed * 1000)) * 100) / 100,
  };
}

/**
 * SyncError latency (hub only): one subscriber refuses every Patient-open with 409; `others`
 * subscribers of Patient-open and SyncError accept it. Measured from the moment the refusing
 * subscriber sends its 409 to the moment the last of the others has the SyncError (req 72, 84).
 */
export async function syncError(target, { others, events, seconds }) {
  const topic = room('syncerror');
  const sent = new Map();
  const tracker = new Tracker();
  const onEvent = (m) => {
    if (m.event['hub.event'] !== 'SyncError') return;
    const oo = m.event.context.find((c) => c.key === 'operationoutcome')?.resource;
    const code = oo?.issue?.[0]?.details?.coding?.find((c) => c.system.endsWith('/syncerror/eventid'))?.code;
    tracker.received(code);
  };
  const [refuser] = await target.join(topic, 1, {
    onEvent: () => {},
    ack: (m) => {
      if (m.event['hub.event'] !== 'Patient-open') return 200;
      sent.get(m.id)?.(performance.now());
      return 409;
    },
  }, 'Patient-open');
  const subs = await target.join(topic, others, { onEvent }, 'Patient-open,SyncError');
  const timestamp = new Date().toISOString();
  const lat = [];
  let lost = 0;
  const end = performance.now() + seconds * 1000;
  for (let i = 0; i < events + 3 && performance.now() < end; i++) {
    const id = randomUUID();
    const refusedAt = new Promise((r) => sent.set(id, r));
    const done = tracker.expect(id, others);
    await target.publish(topic, eventBody(topic, { id, timestamp, patient: `p${i % 8}` }));
    const t = await Promise.race([Promise.all([refusedAt, done]), sleep(15000).then(() => null)]);
    if (!t) {
      lost++;
      continue;
    }
    if (i >= 3) lat.push(t[1] - t[0]);
  }
  for (const s of [refuser, ...subs]) s.close();
  return { others, latency: stats(lat), lost };
}
