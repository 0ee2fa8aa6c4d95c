// The servers a benchmark runs against, all on 127.0.0.1:
// - the hub: the real Worker (edge-hub/build) in workerd through Miniflare (as tests/hub);
// - the floor: a minimal JavaScript Worker + Durable Object in the same runtime that broadcasts
//   each POST body to its sockets (hibernation API, like the hub), with no validation, no acks
//   and no state: what any hub's fan-out in workerd is bounded by;
// - optionally a plain Node `ws` broadcast server, in its own process (node-ws-server.mjs).
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Miniflare } from 'miniflare';
import { startHub } from '../tests/hub/harness.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));

/** The floor's Worker + Durable Object: each POST body goes verbatim to every socket of its path's room. */
const FLOOR_SCRIPT = `
export class Room {
  constructor(state) { this.state = state; }
  async fetch(req) {
    if (req.headers.get('Upgrade') === 'websocket') {
      const [client, server] = Object.values(new WebSocketPair());
      this.state.acceptWebSocket(server);
      return new Response(null, { status: 101, webSocket: client });
    }
    const body = await req.text();
    for (const ws of this.state.getWebSockets()) ws.send(body);
    return new Response('{}', { status: 202 });
  }
  webSocketMessage() {}
  webSocketClose(ws, code) { try { ws.close(code === 1005 ? 1000 : code, 'bye'); } catch {} }
}
export default {
  fetch(req, env) {
    const room = new URL(req.url).pathname.split('/').pop();
    return env.ROOM.get(env.ROOM.idFromName(room)).fetch(req);
  },
};`;

/** The workerd processes that are children of this process (Miniflare spawns one per instance). */
function workerdPids() {
  const out = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      if (Number(fields[1]) === process.pid && comm.startsWith('workerd')) out.push(Number(d));
    } catch {}
  }
  return out;
}

/** Runs `start`, and returns the workerd process it spawned. */
async function withNewWorkerd(start) {
  const before = new Set(workerdPids());
  const value = await start();
  const pid = workerdPids().find((p) => !before.has(p));
  return { value, pid };
}

/** CPU time (ms, user + system) and resident memory (bytes) of a process, from /proc. */
export function procUsage(pid) {
  if (!pid) return { cpuMs: NaN, rss: NaN };
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(f[11]) + Number(f[12]);
  const rss = Number(readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+) kB/)[1]) * 1024;
  return { cpuMs: (ticks * 1000) / 100, rss };
}

/**
 * The FHIRcast hub in workerd, its Durable Objects' SQLite files in a fresh directory under
 * `parent` (default: the system's temporary directory, on disk here). With `parent` on a
 * memory file system (/dev/shm), commits cost no disk flush: comparing the two separates the
 * hub's own work from the storage's.
 */
export async function startHubServer({ bindings = {}, parent } = {}) {
  const persist = parent ? mkdtempSync(join(parent, 'fhircast-hub-')) : undefined;
  const { value: hub, pid } = await withNewWorkerd(() => startHub({ bindings, persist }));
  const stop = async () => {
    await hub.stop();
    if (persist) rmSync(persist, { recursive: true, force: true });
  };
  return { kind: 'hub', hub, pid, base: hub.base, stop };
}

/** The floor: the minimal broadcast Worker + Durable Object in workerd. */
export async function startFloorServer() {
  const dir = mkdtempSync(join(tmpdir(), 'fhircast-floor-'));
  const { value: mf, pid } = await withNewWorkerd(async () => {
    const mf = new Miniflare({
      modules: true,
      script: FLOOR_SCRIPT,
      compatibilityDate: '2026-07-01',
      durableObjects: { ROOM: { className: 'Room', useSQLite: true } },
      durableObjectsPersist: dir,
      cf: false,
      host: '127.0.0.1',
      port: 0,
    });
    await mf.ready;
    return mf;
  });
  const url = await mf.ready;
  return {
    kind: 'floor',
    pid,
    origin: url.origin,
    stop: async () => {
      await mf.dispose().catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A plain Node `ws` broadcast server in a child process (a second baseline, outside workerd). */
export async function startNodeWsServer() {
  const nodeBin = process.execPath;
  const child = spawn(nodeBin, [join(HERE, 'node-ws-server.mjs')], { stdio: ['ignore', 'pipe', 'inherit'] });
  const origin = await new Promise((resolve, reject) => {
    let buf = '';
    child.stdout.on('data', (d) => {
      buf += d;
      const m = buf.match(/listening (http:\/\/[^\s]+)/);
      if (m) resolve(m[1]);
    });
    child.once('exit', (c) => reject(new Error(`node-ws-server exited ${c}`)));
  });
  return { kind: 'node-ws', pid: child.pid, origin, stop: async () => child.kill('SIGTERM') };
}
