// A CPU profile of the hub in workerd (V8's sampling profiler through workerd's inspector):
// `node bench/profile.mjs [subscribers] [events]` runs a fan-out (default 100 subscribers, 300
// events, every subscriber acking) and prints the functions with the most self time — the
// Worker's and the Durable Object's wasm (with Rust names), their JS glue, and the runtime's
// built-ins. Loopback only; bounded by the event count. `PROFILE_BINDINGS` (JSON) adds vars,
// for an A/B of settings: `PROFILE_BINDINGS='{"TIMELINE_LIMIT":"0"}'` profiles the hub not
// recording.
import { randomUUID } from 'node:crypto';
import { Miniflare } from 'miniflare';
import WebSocket from 'ws';
import { freePort, miniflareOptions } from '../tests/hub/harness.mjs';
import { targetFor, Tracker, eventBody } from './loadgen.mjs';

const [n = 100, events = 300] = process.argv.slice(2).map(Number);
const inspectorPort = await freePort();
// The conformance suite's Miniflare options, with workerd's inspector on.
const bindings = JSON.parse(process.env.PROFILE_BINDINGS ?? '{}');
const mf = new Miniflare(miniflareOptions({ bindings, port: 0, options: { inspectorPort } }));
const url = await mf.ready;
const server = { kind: 'hub', base: `${url.origin}/api/hub` };
const target = targetFor(server);

// workerd runs the Worker and its Durable Objects in one isolate: one inspector target.
const targets = await (await fetch(`http://127.0.0.1:${inspectorPort}/json`)).json();
const ws = new WebSocket(targets[0].webSocketDebuggerUrl);
await new Promise((r) => ws.once('open', r));
let seq = 0;
const pending = new Map();
ws.on('message', (d) => {
  const m = JSON.parse(d);
  if (m.id && pending.has(m.id)) pending.get(m.id)(m.result);
});
const send = (method, params = {}) =>
  new Promise((resolve) => {
    const id = ++seq;
    pending.set(id, resolve);
    ws.send(JSON.stringify({ id, method, params }));
  });

try {
  const tracker = new Tracker();
  const topic = `profile-${randomUUID()}`;
  const subs = await target.join(topic, n, { onEvent: (m) => tracker.received(m.id) });
  const timestamp = new Date().toISOString();
  await send('Profiler.enable');
  await send('Profiler.setSamplingInterval', { interval: 100 });
  await send('Profiler.start');
  for (let i = 0; i < events; i++) {
    const id = randomUUID();
    const done = tracker.expect(id, n);
    await target.publish(topic, eventBody(topic, { id, timestamp, patient: `p${i % 8}` }));
    await done;
  }
  await new Promise((r) => setTimeout(r, 300));
  const { profile } = await send('Profiler.stop');
  for (const s of subs) s.close();

  const dt = new Map();
  const ids = profile.samples;
  const deltas = profile.timeDeltas;
  for (let i = 0; i < ids.length; i++) dt.set(ids[i], (dt.get(ids[i]) ?? 0) + deltas[i]);
  const self = new Map();
  let total = 0;
  for (const node of profile.nodes) {
    const t = dt.get(node.id) ?? 0;
    const name = node.callFrame.functionName || `(${node.callFrame.url.split('/').pop() || 'anonymous'})`;
    if (name === '(idle)' || name === '(program)' || name === '(garbage collector)') {
      self.set(name, (self.get(name) ?? 0) + t);
      continue;
    }
    total += t;
    self.set(name, (self.get(name) ?? 0) + t);
  }
  const busy = total / 1000;
  console.log(`${n} subscribers, ${events} events: ${busy.toFixed(0)} ms of JS/wasm self time = ${(busy / events).toFixed(3)} ms per event (excl. idle, program, GC: ${['(idle)', '(program)', '(garbage collector)'].map((k) => `${k} ${((self.get(k) ?? 0) / 1000).toFixed(0)} ms`).join(', ')})`);
  const top = [...self.entries()].filter(([k]) => !['(idle)', '(program)', '(garbage collector)'].includes(k)).sort((a, b) => b[1] - a[1]).slice(0, 30);
  for (const [name, t] of top) console.log(`${((100 * t) / total).toFixed(1).padStart(5)}%  ${(t / 1000 / events).toFixed(4)} ms/event  ${name.slice(0, 140)}`);
} finally {
  ws.close();
  await mf.dispose();
}
