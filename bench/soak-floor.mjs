// The memory floor of workerd itself: the soak's question ("does RSS grow with requests?")
// asked of a minimal JS Worker (no wasm, no Durable Object, no storage) in the same Miniflare,
// beside the hub's Worker answering the same GET (`/.well-known/fhircast-configuration`, no
// Durable Object) and the hub's full subscribe/unsubscribe cycle. Prints RSS after every
// 2,000 requests and, for the hub, the wasm linear memory (DEBUG_MEMORY=1 header).
//
//   node bench/soak-floor.mjs [requests=12000]
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { execFileSync } from 'node:child_process';
import { Miniflare } from 'miniflare';
import { startHub, uid } from '../tests/hub/harness.mjs';

const TOTAL = Number(process.argv[2] ?? 12000);
const STEP = 2000;
const freePort = () =>
  new Promise((r) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => r(port));
    });
  });
const pidsOf = (port) =>
  execFileSync('ps', ['-eo', 'pid=,args='], { encoding: 'utf8' })
    .split('\n')
    .filter((l) => l.includes('workerd') && l.includes(`entry=127.0.0.1:${port} `))
    .map((l) => Number(l.trim().split(/\s+/)[0]));
const rssOf = (pids) =>
  pids.reduce((s, pid) => s + Number(readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+)/)[1]) / 1024, 0);

/** Runs `one` (one request, or one `unit`) TOTAL times (20 at a time), printing RSS (and `extra()`) every STEP. */
async function run(label, rss, one, extra = async () => '', unit = 'requests') {
  const start = rss();
  console.log(`${label}: start ${start.toFixed(1)} MB RSS ${await extra()}`);
  for (let done = STEP; done <= TOTAL; done += STEP) {
    await Promise.all(Array.from({ length: 20 }, async () => { for (let i = 0; i < STEP / 20; i++) await one(); }));
    console.log(`${label}: ${String(done).padStart(6)} ${unit}  ${rss().toFixed(1)} MB RSS ${await extra()}`);
  }
  const end = rss();
  console.log(`${label}: ${((1024 * (end - start)) / TOTAL).toFixed(1)} KB RSS per ${unit.replace(/s$/, '')}`);
}

const port = await freePort();
const mf = new Miniflare({ modules: true, script: 'export default { fetch() { return new Response("ok"); } }', compatibilityDate: '2026-07-01', host: '127.0.0.1', port, cf: false });
const url = await mf.ready;
await run('JS floor Worker', () => rssOf(pidsOf(port)), () => fetch(url).then((r) => r.text()));
await mf.dispose();

const hub = await startHub({ bindings: { DEBUG_MEMORY: '1' } });
const wk = `${hub.base}/.well-known/fhircast-configuration`;
const wasm = async () => `${(Number((await fetch(wk)).headers.get('x-fhircast-wasm-bytes')) / 2 ** 20).toFixed(2)} MB wasm`;
await run('hub Worker GET', () => rssOf(hub.workerdPids()), () => fetch(wk).then((r) => r.text()), wasm);
const topics = Array.from({ length: 20 }, (_, i) => uid(`floor${i}`));
let k = 0;
await run('hub subscribe+unsubscribe', () => rssOf(hub.workerdPids()), async () => {
  const topic = topics[k++ % topics.length];
  const r = await hub.subscribe({ topic, events: 'Patient-open', name: 'churn' });
  await hub.unsubscribe(r.json['hub.channel.endpoint'], { topic });
}, wasm, 'cycles');
await hub.stop();
process.exit(0);
