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

/** Every process: pid, parent pid and command name, from /proc. */
function processes() {
  const out = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.push({ pid: Number(d), ppid: Number(fields[1]), comm: stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')) });
    } catch {}
  }
  return out;
}

/** The workerd processes that are children of this process (Miniflare spawns one per instance). */
function workerdPids() {
  return processes().filter((p) => p.ppid === process.pid && p.comm.startsWith('workerd')).map((p) => p.pid);
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
export async function startHubServer({ bindings = {}, parent, build } = {}) {
  const persist = parent ? mkdtempSync(join(parent, 'fhircast-hub-')) : undefined;
  const { value: hub, pid } = await withNewWorkerd(() => startHub({ bindings, persist, build }));
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

/** The workerd processes that are descendants of `pid` (a server started in a child process). */
function workerdDescendants(pid) {
  const all = processes();
  const out = [];
  const walk = (parent) => {
    for (const c of all.filter((p) => p.ppid === parent)) {
      if (c.comm.startsWith('workerd')) out.push(c.pid);
      walk(c.pid);
    }
  };
  walk(pid);
  return out;
}

/** Spawns a dev server and waits until `base` answers; its CPU is every workerd under it. */
async function startChildServer(kind, cmd, args, { cwd, env, base, cleanup }) {
  const child = spawn(cmd, args, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`${base}/.well-known/fhircast-configuration`)).ok) break;
    } catch {}
    if (i > 240 || child.exitCode !== null) throw new Error(`${kind} did not start:\n${out.slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
  const pids = workerdDescendants(child.pid);
  return {
    kind: 'hub',
    label: kind,
    base,
    pid: pids[pids.length - 1],
    pids,
    stop: async () => {
      await new Promise((resolve) => (child.once('exit', resolve), child.kill('SIGINT')));
      cleanup?.();
    },
  };
}

/** The hub as `make dev` serves it (scripts/dev.mjs: Miniflare, with the examples as assets). */
export async function startMakeDevServer() {
  const { freePort, ROOT } = await import('../tests/hub/harness.mjs');
  const port = await freePort();
  const state = mkdtempSync(join(tmpdir(), 'fhircast-dev-'));
  return startChildServer('make dev', process.execPath, [join(ROOT, 'scripts', 'dev.mjs')], {
    env: { DEV_PORT: String(port), DEV_STATE: state },
    base: `http://127.0.0.1:${port}/api/hub`,
    cleanup: () => rmSync(state, { recursive: true, force: true }),
  });
}

/**
 * The same build under `wrangler dev` (`make dev-wrangler`), from a copy of wrangler.toml in
 * target/bench without its [build] step (the Worker is already built).
 */
export async function startWranglerDevServer() {
  const { freePort, ROOT } = await import('../tests/hub/harness.mjs');
  const { writeFileSync, mkdirSync } = await import('node:fs');
  const port = await freePort();
  const dir = join(ROOT, 'target', 'bench');
  mkdirSync(dir, { recursive: true });
  const toml = readFileSync(join(ROOT, 'edge-hub', 'wrangler.toml'), 'utf8')
    .replace(/\[build\][\s\S]*?\n\n/, '')
    .replace('main = "build/worker/shim.mjs"', 'main = "../../edge-hub/build/worker/shim.mjs"')
    .replace('directory = "../target/site"', 'directory = "../site"');
  const config = join(dir, 'wrangler-dev.toml');
  writeFileSync(config, toml);
  const state = mkdtempSync(join(tmpdir(), 'fhircast-wrangler-dev-'));
  const nodeBin = join(ROOT, 'node_modules', '.bin');
  return startChildServer('wrangler dev', join(nodeBin, 'wrangler'), ['dev', '-c', config, '--ip', '127.0.0.1', '--port', String(port), '--show-interactive-dev-session=false', '--persist-to', state, '--var', 'AUTH_MODE:open'], {
    cwd: dir,
    env: { PATH: `${nodeBin}:${process.env.PATH}` },
    base: `http://127.0.0.1:${port}/api/hub`,
    cleanup: () => rmSync(state, { recursive: true, force: true }),
  });
}

/** CPU time and memory of a server: all its workerd processes (wrangler dev runs two). */
export function serverUsage(server) {
  const pids = server.pids ?? [server.pid];
  return pids.map(procUsage).reduce((a, b) => ({ cpuMs: a.cpuMs + b.cpuMs, rss: a.rss + b.rss }), { cpuMs: 0, rss: 0 });
}
