// Renders a bench result as Markdown tables: printed by `make bench`, and written into
// BENCHMARKS.md between its RESULTS markers by `make bench-doc` (node bench/render.mjs
// [result.json], default target/bench/latest.json).
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const f = (x, d = 2) => (x === undefined || x === null || Number.isNaN(x) ? '–' : Number(x).toFixed(d));
const ratio = (a, b) => (a && b ? `${(a / b).toFixed(1)}×` : '–');
const kb = (b) => (b === undefined ? '–' : `${(b / 1024).toFixed(1)} KB`);

export function renderTables(r) {
  const out = [];
  const m = r.machine;
  out.push(`Run ${r.date}${r.quick ? ' (QUICK: smoke run, not representative)' : ''}, \`${r.command}\`, ${r.seconds ?? '?'} s. ${m.cpus} × ${m.cpuModel}, ${m.memoryGiB} GiB, Linux ${m.kernel}, Node ${m.node}, workerd via miniflare ${m.workerd}; load average at start ${m.loadavgAtStart.join(' / ')}, at end ${m.loadavgAtEnd?.join(' / ')}.${r.note ? ` Note: ${r.note}` : ''}`);
  out.push('');
  out.push('**Fan-out latency**: POST sent → the event at *every* subscriber (ms; subscribers ack each event). Ratios are the hub over the floor.');
  out.push('');
  out.push('| subscribers | floor p50 / p99 | node ws p50 / p99 | hub p50 / p99 | hub ÷ floor p50 / p99 | events | lost | server CPU ms / event: hub (floor) | hub memory / subscriber (floor) |');
  out.push('|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const row of r.fanout) {
    const { floor: a, ['node-ws']: n, hub: h } = row;
    const lost = `${h.lost}${h.refused ? ` (+${h.refused} refused)` : ''}${h.closedByServer ? ` (${h.closedByServer} closed)` : ''}`;
    out.push(`| ${row.subscribers} | ${f(a.latency.p50)} / ${f(a.latency.p99)} | ${f(n.latency.p50)} / ${f(n.latency.p99)} | ${f(h.latency.p50)} / ${f(h.latency.p99)} | ${ratio(h.latency.p50, a.latency.p50)} / ${ratio(h.latency.p99, a.latency.p99)} | ${h.latency.n} | ${lost} | ${f(h.serverCpuMsPerEvent, 3)} (${f(a.serverCpuMsPerEvent, 3)}) | ${h.memPerSubscriberBytes === undefined ? '–' : kb(h.memPerSubscriberBytes)} (${a.memPerSubscriberBytes === undefined ? '–' : kb(a.memPerSubscriberBytes)}) |`);
  }
  if (r.fanout.some((row) => row['hub-norecord'])) {
    out.push('');
    out.push('**What recording costs** (issue 17): the hub as above (timeline on, `TIMELINE_LIMIT` 1,000; audit off as in every bench row) against the same build recording nothing (`TIMELINE_LIMIT=0 AUDIT_SINK=off`), same run.');
    out.push('');
    out.push('| subscribers | recording p50 / p99 | not recording p50 / p99 | ÷ p50 | CPU ms / event: recording (not) | ÷ CPU |');
    out.push('|---:|---:|---:|---:|---:|---:|');
    for (const row of r.fanout) {
      const { hub: h, ['hub-norecord']: o } = row;
      if (!o) continue;
      out.push(`| ${row.subscribers} | ${f(h.latency.p50)} / ${f(h.latency.p99)} | ${f(o.latency.p50)} / ${f(o.latency.p99)} | ${ratio(h.latency.p50, o.latency.p50)} | ${f(h.serverCpuMsPerEvent, 3)} (${f(o.serverCpuMsPerEvent, 3)}) | ${ratio(h.serverCpuMsPerEvent, o.serverCpuMsPerEvent)} |`);
    }
  }
  if (r.fanout.some((row) => row['make-dev'])) {
    out.push('');
    out.push('**The hub as a developer runs it**: the same fan-out against the same build served by `make dev` (Miniflare, the examples as assets: `scripts/dev.mjs`) and by `make dev-wrangler` (`wrangler dev`; CPU is both of its workerd processes, proxy and Worker). Ratios are over the hub row above.');
    out.push('');
    out.push('| subscribers | make dev p50 / p99 | ÷ hub p50 | CPU ms / event | wrangler dev p50 / p99 | ÷ hub p50 | CPU ms / event |');
    out.push('|---:|---:|---:|---:|---:|---:|---:|');
    for (const row of r.fanout) {
      const { hub: h, ['make-dev']: d, ['wrangler-dev']: w } = row;
      if (!d && !w) continue;
      const cell = (x) => (x ? [`${f(x.latency.p50)} / ${f(x.latency.p99)}${x.lost ? ` (${x.lost} lost)` : ''}`, ratio(x.latency.p50, h.latency.p50), f(x.serverCpuMsPerEvent, 3)] : ['–', '–', '–']);
      out.push(`| ${row.subscribers} | ${[...cell(d), ...cell(w)].join(' | ')} |`);
    }
  }
  out.push('');
  out.push('**Sustained throughput**: POSTs kept in flight for a fixed time; events/s accepted (2xx) and fully delivered (every subscriber had it and sent its ack). CPU is the server process (workerd or node) per delivered event, and in cores; the generator is this benchmark\'s own process. *hub-tmpfs* is the same hub with its SQLite files in memory (/dev/shm): the difference to *hub* is the cost of committing each event to disk before its 2xx.');
  out.push('');
  out.push('| load | server | accepted/s | delivered+acked/s | latency p50 / p99 (ms) | server CPU ms/event | server cores | wall ms/event | generator CPU ms/event | generator cores | lost |');
  out.push('|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const row of r.throughput) {
    for (const k of ['floor', 'node-ws', 'hub', 'hub-norecord', 'hub-tmpfs']) {
      const t = row[k];
      if (!t) continue;
      out.push(`| ${row.name} (${t.concurrency} in flight) | ${k} | ${t.acceptedPerSec} | ${t.deliveredPerSec} | ${f(t.latency.p50)} / ${f(t.latency.p99)} | ${f(t.serverCpuMsPerEvent, 3)} | ${f(t.serverCpuCores)} | ${f(t.wallMsPerEvent, 3)} | ${f(t.generatorCpuMsPerEvent, 3)} | ${f(t.generatorCpuCores)} | ${t.undelivered + t.refused}${t.closedByServer ? ` (${t.closedByServer} closed)` : ''} |`);
    }
  }
  if (r.syncError) {
    const s = r.syncError;
    const floor10 = r.fanout.find((x) => x.subscribers === 10)?.floor?.latency;
    out.push('');
    out.push(`**SyncError latency** (hub): a subscriber's 409 sent → the SyncError at all ${s.others} others: p50 ${f(s.latency.p50)} ms, p99 ${f(s.latency.p99)} ms (${s.latency.n} events, ${s.lost} lost); ÷ floor fan-out at 10: ${ratio(s.latency.p50, floor10?.p50)} / ${ratio(s.latency.p99, floor10?.p99)}.`);
  }
  if (r.sdk) {
    const s = r.sdk;
    out.push('');
    out.push(`**SDK** (npm/pkg, headless Chromium): size ${kb(s.size.raw)} raw, **${s.size.gzip.toLocaleString('en')} B gzipped** (${kb(s.size.gzip)}) (wasm ${kb(s.size.files['pkg/fhircast_sdk_bg.wasm'].gzip)}, JS ${kb((s.size.files['pkg/index.js'] ?? s.size.files['index.js']).gzip)}; budget 100,000 B). WebSocket message → handler call: p50 ${f(s.handlerLatency.p50, 3)} ms, p99 ${f(s.handlerLatency.p99, 3)} ms (${s.handlerLatency.n} events). Memory per connected client (${s.clients} clients in one page, after GC): JS heap ${kb(s.jsHeapPerClientBytes)}, wasm linear memory ${kb(s.wasmMemoryPerClientBytes)}.`);
  }
  return out.join('\n');
}

/** The soak's summary (the lines after its table), as `make bench` saved it, or nothing. */
export function renderSoak(text) {
  const keep = /^(soak:|posted |memory |workerd |latency |machine |VERDICT)/;
  const lines = text.split('\n').filter((l) => keep.test(l));
  if (!lines.length) return '';
  return ['**Soak** (`node bench/soak.mjs`, run by `make bench`; method and judgement in RELIABILITY.md):', '', '```', ...lines, '```'].join('\n');
}

const START = '<!-- RESULTS:START (generated by `make bench-doc` from target/bench/latest.json; do not edit) -->';
const END = '<!-- RESULTS:END -->';

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const root = join(dirname(fileURLToPath(import.meta.url)), '..');
  const src = process.argv[2] ?? join(root, 'target', 'bench', 'latest.json');
  const r = JSON.parse(readFileSync(src, 'utf8'));
  const docPath = join(root, 'BENCHMARKS.md');
  const doc = readFileSync(docPath, 'utf8');
  const a = doc.indexOf(START);
  const b = doc.indexOf(END);
  if (a < 0 || b < a) throw new Error(`BENCHMARKS.md lacks the ${START} ... ${END} markers`);
  const soakPath = join(root, 'target', 'bench', 'soak.txt');
  const soak = existsSync(soakPath) ? renderSoak(readFileSync(soakPath, 'utf8')) : '';
  writeFileSync(docPath, `${doc.slice(0, a + START.length)}\n\n${renderTables(r)}${soak ? `\n\n${soak}` : ''}\n\n${doc.slice(b)}`);
  console.log(`BENCHMARKS.md: results from ${src}`);
}
