// `make bench`: the hub in workerd against a floor measured in the same run, on 127.0.0.1.
// Prints a table and writes the figures to target/bench/bench-<time>.json and latest.json.
// BENCH_QUICK=1 shortens every phase (a smoke run; its figures are not for BENCHMARKS.md).
import { mkdirSync, writeFileSync, readFileSync, existsSync } from 'node:fs';
import { cpus, totalmem, loadavg, release } from 'node:os';
import { join } from 'node:path';
import { ROOT } from '../tests/hub/harness.mjs';
import { startHubServer, startFloorServer, startNodeWsServer, startMakeDevServer, startWranglerDevServer } from './servers.mjs';
import { targetFor } from './loadgen.mjs';
import { fanout, throughput, syncError } from './scenarios.mjs';
import { sdkSize, sdkInBrowser } from './sdk.mjs';
import { renderTables } from './render.mjs';

const QUICK = process.env.BENCH_QUICK === '1';
const q = (full, quick) => (QUICK ? quick : full);
const started = Date.now();
const log = (s) => console.error(`[bench ${((Date.now() - started) / 1000).toFixed(0).padStart(3)} s] ${s}`);

const FANOUT = [
  { n: 1, events: q(200, 20), seconds: 20 },
  { n: 10, events: q(200, 20), seconds: 20 },
  { n: 100, events: q(200, 20), seconds: 30 },
  { n: 1000, events: q(100, 10), seconds: 60 },
];
const TPUT = [
  { name: '1 topic x 10', topics: 1, perTopic: 10, concurrency: 16, seconds: q(5, 2) },
  { name: '100 topics x 10', topics: 100, perTopic: 10, concurrency: 32, seconds: q(5, 2) },
];

const machine = {
  cpus: cpus().length,
  cpuModel: cpus()[0]?.model,
  memoryGiB: Math.round(totalmem() / 2 ** 30),
  kernel: release(),
  node: process.version,
  workerd: JSON.parse(readFileSync(join(ROOT, 'node_modules', 'miniflare', 'package.json'), 'utf8')).version,
  loadavgAtStart: loadavg().map((x) => Math.round(x * 100) / 100),
};

const result = { date: new Date().toISOString(), quick: QUICK, command: QUICK ? 'BENCH_QUICK=1 make bench' : 'make bench', note: process.env.BENCH_NOTE ?? '', machine, fanout: [], throughput: [], syncError: null, sdk: null };

const servers = {};
try {
  log('starting the floor (JS Worker + Durable Object in workerd), a Node ws server, and the hub (workerd)');
  // One at a time: each workerd is recognised as the child process that appeared while it started.
  servers.floor = await startFloorServer();
  servers['node-ws'] = await startNodeWsServer();
  servers.hub = await startHubServer();
  // The hub recording nothing (no timeline, no audit): what recording costs (issue 17).
  servers['hub-norecord'] = await startHubServer({ bindings: { TIMELINE_LIMIT: '0', AUDIT_SINK: 'off' } });
  // Throughput also against the hub with its storage in memory: the difference is the disk.
  if (existsSync('/dev/shm')) servers['hub-tmpfs'] = await startHubServer({ parent: '/dev/shm' });
  const kinds = ['floor', 'node-ws', 'hub', 'hub-norecord'];
  for (const f of FANOUT) {
    const row = { subscribers: f.n };
    for (const k of kinds) {
      log(`fan-out ${f.n} subscriber(s): ${k}`);
      row[k] = await fanout(targetFor(servers[k]), servers[k], f.n, f);
    }
    result.fanout.push(row);
  }
  // The same hub as a developer first meets it: `make dev` (Miniflare with the examples as
  // assets, scripts/dev.mjs) and `make dev-wrangler` (wrangler dev), one after the other.
  for (const [k, start] of [['make-dev', startMakeDevServer], ['wrangler-dev', startWranglerDevServer]]) {
    log(`starting ${k}`);
    const server = await start();
    try {
      for (const f of FANOUT) {
        log(`fan-out ${f.n} subscriber(s): ${k}`);
        result.fanout.find((r) => r.subscribers === f.n)[k] = await fanout(targetFor(server), server, f.n, f);
      }
    } finally {
      await server.stop();
    }
  }
  for (const t of TPUT) {
    const row = { name: t.name };
    for (const k of [...kinds, ...(servers['hub-tmpfs'] ? ['hub-tmpfs'] : [])]) {
      log(`throughput ${t.name}: ${k}`);
      row[k] = await throughput(targetFor(servers[k]), servers[k], t);
    }
    result.throughput.push(row);
  }
  log('SyncError latency: hub');
  result.syncError = await syncError(targetFor(servers.hub), { others: 10, events: q(100, 10), seconds: 30 });
  log('SDK: size, message-to-handler time and memory in Chromium');
  result.sdk = { size: sdkSize(), ...(await sdkInBrowser(servers.hub, { events: q(100, 10), clients: q(20, 5) })) };
} finally {
  await Promise.allSettled(Object.values(servers).map((s) => s.stop()));
}
result.seconds = Math.round((Date.now() - started) / 1000);
result.machine.loadavgAtEnd = loadavg().map((x) => Math.round(x * 100) / 100);

const dir = join(ROOT, 'target', 'bench');
mkdirSync(dir, { recursive: true });
const file = join(dir, `bench-${result.date.replace(/[:.]/g, '-')}.json`);
writeFileSync(file, JSON.stringify(result, null, 2));
writeFileSync(join(dir, 'latest.json'), JSON.stringify(result, null, 2));
console.log(renderTables(result));
console.log(`\nwritten: ${file} (and target/bench/latest.json); ${result.seconds} s`);
