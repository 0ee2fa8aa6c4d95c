// Test harness for the hub: the real Worker (edge-hub/build, made by scripts/build-hub.sh) running in
// workerd through Miniflare, bound to 127.0.0.1, driven over real HTTP and WebSockets.
//
//   const hub = await startHub({ bindings: { ACK_TIMEOUT_SECONDS: '2' } });
//   const a = await hub.join('Patient-open,SyncError', { name: 'EHR' });   // subscribed + confirmed
//   await hub.post(hub.event('Patient-open', [patient('p1')]));
//   const msg = await a.nextEvent('Patient-open');
//   await hub.restart();   // stops the workerd process and starts it again on the same state
//   await hub.stop();
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:net';
import { execFileSync } from 'node:child_process';
import { Miniflare } from 'miniflare';
import WebSocket from 'ws';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BUILD = join(ROOT, 'edge-hub', 'build');

/**
 * Starts Miniflare with `options(port)` on a free port. The port is free when chosen, but
 * another process (a test file running beside this one, an outgoing connection) can take it
 * before workerd binds it: then another port is tried (a collision failed a CI run once).
 */
async function listen(options) {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const mf = new Miniflare(options(port));
    try {
      const url = await mf.ready;
      return { mf, url, port };
    } catch (e) {
      await mf.dispose().catch(() => {});
      if (e?.code !== 'ERR_ADDRESS_IN_USE' || attempt === 5) throw e;
    }
  }
}

/** A free port on 127.0.0.1 (so a restarted hub keeps its address). */
export async function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

export function miniflareOptions({ bindings, persist, port, options = {}, build = BUILD }) {
  if (!existsSync(join(build, 'worker', 'shim.mjs'))) {
    throw new Error(`${build} is missing: build the worker first (${build === BUILD ? 'make hub-build' : 'make hub-test-build'})`);
  }
  return {
    modules: true,
    modulesRoot: build,
    scriptPath: join(build, 'worker', 'shim.mjs'),
    // The build's ES modules have a .js extension (Miniflare would read them as CommonJS).
    modulesRules: [
      { type: 'ESModule', include: ['**/*.js', '**/*.mjs'] },
      { type: 'CompiledWasm', include: ['**/*.wasm'], fallthrough: true },
    ],
    compatibilityDate: '2026-07-01',
    durableObjects: { TOPIC: { className: 'TopicObject', useSQLite: true } },
    durableObjectsPersist: persist,
    bindings: { AUTH_MODE: 'open', HUB_BASE_PATH: '/api/hub', ALLOWED_ORIGINS: '*', AUDIT_SINK: 'off', ...bindings },
    cf: false,
    host: '127.0.0.1',
    port,
    ...options,
  };
}

/**
 * Starts the hub. `bindings` are wrangler vars/secrets (strings); `options` are more Miniflare
 * options (e.g. `assets`, as tests/e2e serves the examples); `compose` turns the hub's Miniflare
 * options into the ones to run (e.g. scripts/smart-dev.mjs withSmartDev: a second Worker).
 */
export async function startHub({ bindings = {}, persist, options, compose = (o) => o, build } = {}) {
  const dir = persist ?? mkdtempSync(join(tmpdir(), 'fhircast-hub-'));
  const options_ = (port) => compose(miniflareOptions({ bindings, persist: dir, port, options, build }));
  let { mf, url, port } = await listen(options_);
  // A restart keeps the address, so the apps' reconnects find it.
  const config = () => options_(port);
  const hub = new Hub(`${url.origin}/api/hub`, url.origin);
  hub.persist = dir;
  hub.sockets = new Set();
  /** Stops the workerd process (connected sockets drop) and starts it again on the same state. */
  hub.restart = async () => {
    await mf.dispose();
    mf = new Miniflare(config());
    await mf.ready;
  };
  /** Stops the workerd process, leaving its state on disk. */
  hub.kill = async () => {
    await mf.dispose();
  };
  /**
   * SIGKILLs the workerd process: no graceful shutdown, no flush, sockets cut without a Close
   * frame (a crash or an evicted machine). Its state stays on disk; `start()` runs it again.
   */
  hub.sigkill = async () => {
    const pids = workerdPids(port);
    if (pids.length === 0) throw new Error(`no workerd process serves port ${port}`);
    for (const pid of pids) process.kill(pid, 'SIGKILL');
    await mf.dispose().catch(() => {});
    return pids;
  };
  /** The workerd process ids serving this hub (for memory figures and sigkill). */
  hub.workerdPids = () => workerdPids(port);
  /** Starts it again after kill() or sigkill(). */
  hub.start = async () => {
    mf = new Miniflare(config());
    await mf.ready;
  };
  hub.stop = async () => {
    for (const s of hub.sockets) s.terminate();
    await mf.dispose().catch(() => {});
    if (!persist) rmSync(dir, { recursive: true, force: true });
  };
  return hub;
}

/**
 * The hub beside other Workers in one workerd (a queue consumer, a stand-in binding…): `hub`
 * adds Miniflare options to the hub's Worker, `workers` are the others, `options` are shared
 * options (e.g. `handleRuntimeStdio`). Returns the Hub with `hub.worker(name)` (a fetcher of
 * one of the others) and `hub.stop()`.
 */
export async function startHubWith({ bindings = {}, hub: extra = {}, workers = [], options = {} } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'fhircast-hub-'));
  const { mf, url } = await listen((port) => {
    const { host, port: _port, durableObjectsPersist, cf, ...hubWorker } = miniflareOptions({ bindings, persist: dir, port });
    return { host, port, durableObjectsPersist, cf, ...options, workers: [{ name: 'hub', ...hubWorker, ...extra }, ...workers] };
  });
  const hub = new Hub(`${url.origin}/api/hub`, url.origin);
  hub.worker = (name) => mf.getWorker(name);
  hub.stop = async () => {
    await mf.dispose();
    rmSync(dir, { recursive: true, force: true });
  };
  return hub;
}

/** The workerd processes this test process started that listen on `port`. */
function workerdPids(port) {
  const ps = execFileSync('ps', ['-eo', 'pid=,ppid=,args='], { encoding: 'utf8' });
  return ps
    .split('\n')
    .map((l) => l.trim().match(/^(\d+)\s+(\d+)\s+(.*)$/))
    .filter((m) => m && Number(m[2]) === process.pid && m[3].includes('workerd') && m[3].includes(`entry=127.0.0.1:${port} `))
    .map((m) => Number(m[1]));
}

export const uid = (prefix = 't') => `${prefix}-${randomUUID()}`;

/** application/x-www-form-urlencoded from an object (undefined values skipped). */
export function form(params) {
  return Object.entries(params)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`)
    .join('&');
}

export const patient = (id, extra = {}) => ({ key: 'patient', resource: { resourceType: 'Patient', id, identifier: [{ value: id }], ...extra } });
export const encounter = (id, pid) => ({ key: 'encounter', resource: { resourceType: 'Encounter', id, subject: { reference: `Patient/${pid}` } } });
export const study = (id) => ({ key: 'study', resource: { resourceType: 'ImagingStudy', id } });
export const report = (id, extra = {}) => ({ key: 'report', resource: { resourceType: 'DiagnosticReport', id, status: 'preliminary', ...extra } });
export const reportRef = (id) => ({ key: 'report', reference: { reference: `DiagnosticReport/${id}` } });
export const observationPut = (id, extra = {}) => ({ request: { method: 'PUT' }, resource: { resourceType: 'Observation', id, status: 'preliminary', ...extra } });
export const observationDelete = (id) => ({ request: { method: 'DELETE' }, fullUrl: `Observation/${id}` });
export const bundle = (entries, id) => ({ key: 'updates', resource: { resourceType: 'Bundle', ...(id ? { id } : {}), type: 'transaction', entry: entries } });
export const parameters = (code) => ({ key: 'parameters', resource: { resourceType: 'Parameters', parameter: [{ name: 'code', valueCoding: { system: 'http://fhircast.hl7.org/CodeSystem/fhircast-codesystem', code } }] } });

/** Reads a SyncError notification's OperationOutcome into its parts (the subscriber from seed 003's `…/subscriber` coding, else the profile's `…/subscribername`). */
export function syncErrorDetails(msg) {
  const oo = msg.event.context.find((c) => c.key === 'operationoutcome').resource;
  const issue = oo.issue[0];
  const code = (suffix) => issue.details.coding.find((c) => c.system.endsWith(`/syncerror/${suffix}`))?.code;
  return { severity: issue.severity, code: issue.code, diagnostics: issue.diagnostics, eventId: code('eventid'), eventName: code('eventname'), subscriber: code('subscriber') ?? code('subscribername'), oo };
}

export class Hub {
  constructor(base, origin) {
    this.base = base;
    this.origin = origin;
    this.topic = uid('topic');
  }

  /** An event request body. */
  event(name, context, { topic = this.topic, id = randomUUID(), timestamp = new Date().toISOString(), versionId } = {}) {
    const event = { 'hub.topic': topic, 'hub.event': name, context };
    if (versionId !== undefined) event['context.versionId'] = versionId;
    return { timestamp, id, event };
  }

  /** Any HTTP request; returns { status, headers, text, json }. */
  async request(path, { method = 'GET', headers = {}, body } = {}) {
    const res = await fetch(`${this.base}${path}`, { method, headers, body });
    const text = await res.text();
    let json;
    try {
      json = JSON.parse(text);
    } catch {}
    return { status: res.status, headers: res.headers, text, json };
  }

  /** POSTs a subscription form. `params` uses the spec's names ('hub.events', ...). */
  async subscribeForm(params, { token, headers = {} } = {}) {
    return this.request('', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers },
      body: typeof params === 'string' ? params : form(params),
    });
  }

  async subscribe({ topic = this.topic, events, name, lease, endpoint, token } = {}) {
    return this.subscribeForm(
      { 'hub.channel.type': 'websocket', 'hub.mode': 'subscribe', 'hub.topic': topic, 'hub.events': events, 'hub.lease_seconds': lease, 'hub.channel.endpoint': endpoint, 'subscriber.name': name },
      { token },
    );
  }

  async unsubscribe(endpoint, { topic = this.topic, token } = {}) {
    return this.subscribeForm({ 'hub.channel.type': 'websocket', 'hub.mode': 'unsubscribe', 'hub.topic': topic, 'hub.channel.endpoint': endpoint }, { token });
  }

  /** POSTs an event (object or raw text). */
  async post(body, { path = '', contentType = 'application/fhir+json', token } = {}) {
    return this.request(path, {
      method: 'POST',
      headers: { 'content-type': contentType, ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
  }

  async getContext(topic = this.topic, { token } = {}) {
    return this.request(`/${encodeURIComponent(topic)}`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  }

  /** Subscribes, connects, and waits for the confirmation. Options as `subscribe` plus `ack`. */
  async join(events, { name, topic = this.topic, lease, token, ack = 200 } = {}) {
    const r = await this.subscribe({ topic, events, name, lease, token });
    if (r.status !== 202) throw new Error(`subscribe: ${r.status} ${r.text}`);
    const s = await Subscriber.connect(r.json['hub.channel.endpoint'], { ack });
    this.sockets?.add(s.ws);
    s.endpoint = r.json['hub.channel.endpoint'];
    s.confirmation = await s.next();
    if (s.confirmation['hub.mode'] !== 'subscribe') throw new Error(`expected a confirmation: ${JSON.stringify(s.confirmation)}`);
    return s;
  }
}

/**
 * One WebSocket subscriber: a queue of received JSON messages. `ack` decides the answer to each
 * notification: a status number, a function (msg) => status | undefined (undefined = no answer),
 * or false (never answer).
 */
export class Subscriber {
  static connect(url, { ack = 200 } = {}) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url);
      const s = new Subscriber(ws, ack);
      ws.once('open', () => resolve(s));
      ws.once('unexpected-response', (_req, res) => reject(Object.assign(new Error(`upgrade refused: ${res.statusCode}`), { status: res.statusCode })));
      ws.once('error', reject);
    });
  }

  constructor(ws, ack) {
    this.ws = ws;
    this.ack = ack;
    this.queue = [];
    this.waiters = [];
    this.all = [];
    this.closed = new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
    ws.on('message', (data) => {
      const msg = JSON.parse(data.toString());
      this.all.push(msg);
      if (msg.id && msg.event) {
        const status = typeof this.ack === 'function' ? this.ack(msg) : this.ack;
        if (typeof status === 'number') this.send({ id: msg.id, status });
      }
      const i = this.waiters.findIndex((w) => w.match(msg));
      if (i >= 0) this.waiters.splice(i, 1)[0].resolve(msg);
      else this.queue.push(msg);
    });
  }

  send(obj) {
    this.ws.send(typeof obj === 'string' ? obj : JSON.stringify(obj));
  }

  /** The next message matching `match` (default: any), within `timeout` ms. */
  next(match = () => true, timeout = 5000) {
    const i = this.queue.findIndex(match);
    if (i >= 0) return Promise.resolve(this.queue.splice(i, 1)[0]);
    return new Promise((resolve, reject) => {
      const w = { match, resolve: (m) => (clearTimeout(t), resolve(m)) };
      const t = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        reject(new Error(`no matching message within ${timeout} ms; received: ${JSON.stringify(this.all).slice(0, 800)}`));
      }, timeout);
      this.waiters.push(w);
    });
  }

  /** The next notification of `name` (case-insensitive). */
  nextEvent(name, timeout) {
    return this.next((m) => m.event?.['hub.event']?.toLowerCase() === name.toLowerCase(), timeout);
  }

  /** Resolves true if no message matching `match` arrives within `ms`. */
  async nothing(match = () => true, ms = 500) {
    try {
      await this.next(match, ms);
      return false;
    } catch {
      return true;
    }
  }

  close(code = 1000, reason = 'bye') {
    this.ws.close(code, reason);
    return this.closed;
  }
}
