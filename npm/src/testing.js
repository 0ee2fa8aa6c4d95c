// fhircast-sdk/testing: an in-process FHIRcast hub for app tests (vitest, Playwright, Node).
//
// The hub is the real one: fhircast-core's hub::Topic (the state machine the Hub on Cloudflare
// runs), compiled to its own WebAssembly module (testkit/, ../pkg/fhircast_testkit_bg.wasm),
// loaded only by this entry point. What this file adds is the wire: it answers the HTTP calls
// and stands in for the WebSockets of the hub's URL, by installing `fetch` and `WebSocket` on
// globalThis that route that URL here and leave every other URL to the originals. An app's
// FhircastClient connects to `hub.url` as it would to a deployed hub; its requests never reach
// a network.
//
// Around the app under test: simulated apps (`hub.app()`) that accept, refuse, answer late or
// never, and the faults an app must survive: a dropped socket, an expired lease, a hub restart,
// a SyncError. Messages are delivered as microtasks, so `await`s move them, and fake timers
// (vi.useFakeTimers) move the hub's clock: it reads Date.now() and sets its deadlines with
// setTimeout, so advancing the clock times out an unanswered notification.
//
// Types: ../testing.d.ts.
import wasmInit, { TestHub as Core, operationOutcome, syncErrorOutcome, wellKnown } from '../pkg/fhircast_testkit.js';
import { FhircastError } from './shared.js';

export { FhircastError };

let loading = null;

function loadCore(wasm) {
  if (!loading) {
    loading = wasmInit({ module_or_path: wasm ?? defaultWasm() }).catch((e) => {
      loading = null;
      throw e;
    });
  }
  return loading;
}

// As the main entry does: Node's fetch cannot read file: URLs, so there it is read from disk.
function defaultWasm() {
  const url = new URL('fhircast_testkit_bg.wasm', import.meta.url);
  const fs = url.protocol === 'file:' && globalThis.process?.getBuiltinModule?.('fs/promises');
  return fs ? fs.readFile(url) : url;
}

function randomHex(bytes) {
  const b = crypto.getRandomValues(new Uint8Array(bytes));
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

const later = (f) => queueMicrotask(f);
// The runtime's own setTimeout, for waitFor's limit: it is real time even under fake timers.
const realSetTimeout = globalThis.setTimeout.bind(globalThis);
const realClearTimeout = globalThis.clearTimeout.bind(globalThis);

/** The hubs installed on globalThis, most recent last; the originals they replaced. */
const installed = [];
let originals = null;

function installGlobals() {
  if (originals) return;
  originals = { fetch: globalThis.fetch, WebSocket: globalThis.WebSocket };
  globalThis.fetch = function fetch(input, init) {
    const url = String(input instanceof Request ? input.url : input);
    const hub = installed.findLast((h) => h.owns(url));
    return hub ? hub.fetch(input, init) : originals.fetch.call(globalThis, input, init);
  };
  globalThis.WebSocket = class extends TestSocket {
    constructor(url, protocols) {
      const hub = installed.findLast((h) => h.owns(String(url)));
      if (!hub) {
        if (!originals.WebSocket) throw new FhircastError(`no WebSocket in this runtime for ${url}`, 'unsupported-runtime');
        return new originals.WebSocket(url, protocols);
      }
      super(hub, url);
    }
  };
}

function uninstallGlobals() {
  if (!originals || installed.length) return;
  globalThis.fetch = originals.fetch;
  globalThis.WebSocket = originals.WebSocket;
  originals = null;
}

/**
 * Starts an in-process hub and (unless `install: false`) routes its URL's `fetch` and
 * `WebSocket` to it. Close it with `hub.close()` (e.g. in afterEach).
 */
export async function createTestHub(options = {}) {
  const { url = 'http://fhircast.test/api/hub', topic = 'topic-' + randomHex(6), ackTimeoutMs = 10_000, install = true, wasm } = options;
  await loadCore(wasm);
  const hub = new TestHub(url, topic, ackTimeoutMs);
  if (install) hub.install();
  return hub;
}

/** The in-process hub. */
export class TestHub {
  #core;
  #base;
  #wsBase;
  #sockets = new Map(); // endpoint token -> TestSocket | SimulatedApp
  #names = new Map(); // endpoint token -> subscriber.name
  #timer = null;
  #facts = [];
  #waiters = new Set();
  #pendingAnswers = new Set();
  #closed = false;

  /** @internal Use createTestHub(). */
  constructor(url, topic, ackTimeoutMs) {
    const u = new URL(url);
    this.url = u.href.replace(/\/$/, '');
    this.topic = topic;
    this.#base = u.pathname.replace(/\/$/, '');
    this.#wsBase = `${u.protocol === 'https:' ? 'wss:' : 'ws:'}//${u.host}${this.#base}/ws`;
    this.#core = new Core(randomHex(8), ackTimeoutMs);
  }

  /** Routes this hub's URL (http and ws) to it on globalThis. */
  install() {
    if (!installed.includes(this)) {
      installGlobals();
      installed.push(this);
    }
    return this;
  }

  /** Gives globalThis back its own fetch and WebSocket (once no hub is installed). */
  uninstall() {
    const i = installed.indexOf(this);
    if (i >= 0) installed.splice(i, 1);
    uninstallGlobals();
  }

  /** @internal Whether `url` is this hub's (HTTP under hub.url, or one of its endpoints). */
  owns(url) {
    return url === this.url || url.startsWith(this.url + '/') || url.startsWith(this.#wsBase + '/');
  }

  // ---- HTTP ----------------------------------------------------------------------------

  /** The hub's HTTP API, as `fetch`: what the installed global `fetch` calls for hub.url. */
  async fetch(input, init) {
    const req = input instanceof Request && !init ? input : new Request(input, init);
    const path = new URL(req.url).pathname.replace(/\/$/, '');
    const rest = path.slice(this.#base.length).split('/').filter(Boolean).map(decodeURIComponent);
    const method = req.method.toUpperCase();
    if (this.#closed) return text(503, 'this test hub is closed');
    if (method === 'POST' && rest.length <= 1) {
      const body = await req.text();
      const ct = (req.headers.get('content-type') ?? '').split(';')[0].trim().toLowerCase();
      if (ct === 'application/x-www-form-urlencoded' && rest.length === 0 && !body.trimStart().startsWith('{')) {
        return this.#subscribe(body);
      }
      if (ct === 'application/json' || ct === 'application/fhir+json' || ct.endsWith('+json')) {
        return this.#answer(this.#core.event(body, Date.now()));
      }
      return outcome(415, `events are JSON: send Content-Type application/json or application/fhir+json, not ${JSON.stringify(ct || 'none')} (req 4, neg 1); subscriptions are application/x-www-form-urlencoded (req 24)`);
    }
    if (method === 'GET' && rest.length === 2 && rest[0] === '.well-known' && rest[1] === 'fhircast-configuration') {
      return json(200, JSON.parse(wellKnown()));
    }
    if (method === 'GET' && rest.length === 1) return this.#answer(this.#core.context(rest[0]));
    if (method === 'GET' && rest.length === 2 && rest[1] === 'subscribers') return this.#answer(this.#core.roster(rest[0]));
    if (method === 'GET' && rest.length === 2 && rest[1] === 'timeline') {
      return json(200, { 'hub.topic': rest[0], facts: this.#facts.filter((f) => f.topic === rest[0]) });
    }
    return text(404, `the test hub serves POST ${this.url}, GET ${this.url}/{topic}, and /subscribers and /timeline under it; not ${method} ${path}`);
  }

  #subscribe(form) {
    const r = JSON.parse(this.#core.subscribe(form, Date.now()));
    this.#pump();
    if (r.status !== 202) return text(r.status, r.message);
    const name = new URLSearchParams(form).get('subscriber.name');
    if (name) this.#names.set(r.endpoint, name.trim());
    return json(202, { 'hub.channel.endpoint': `${this.#wsBase}/${encodeURIComponent(r.topic)}/${r.endpoint}` });
  }

  #answer(answerJson) {
    const r = JSON.parse(answerJson);
    this.#pump();
    return r.message === undefined ? json(r.status, r.body) : outcome(r.status, r.message);
  }

  // ---- WebSocket ------------------------------------------------------------------------

  /** @internal A socket opened on `url`: connects its endpoint, or fails it as the hub does. */
  open(socket, url) {
    const token = String(url).split('/').pop();
    later(() => {
      if (socket.readyState !== 0) return;
      const r = JSON.parse(this.#closed ? '{"status":503}' : this.#core.connect(token, Date.now()));
      if (r.status !== 101) {
        socket.fail(); // a refused upgrade: error, then close 1006, as in a browser
        return;
      }
      socket.token = token;
      socket.name = this.#names.get(token);
      this.#sockets.set(token, socket);
      socket.opened();
      this.#pump();
    });
  }

  /** @internal Text a socket sent. */
  received(token, data) {
    later(() => {
      if (!this.#sockets.has(token)) return;
      this.#core.message(token, String(data), Date.now());
      this.#pump();
    });
  }

  /** @internal A socket closed from its side with `code`. */
  closedBy(token, code) {
    later(() => {
      if (!this.#sockets.delete(token)) return;
      this.#core.close(token, code, Date.now());
      this.#pump();
    });
  }

  /** Sends what the core produced, records its facts, and sets the next deadline. */
  #pump() {
    for (const o of JSON.parse(this.#core.outbound())) {
      const s = this.#sockets.get(o.to);
      if (!s) continue;
      if (o.close !== undefined) {
        this.#sockets.delete(o.to);
        later(() => s.closedByHub(o.close, o.reason, true));
      } else {
        later(() => s.deliver(o.text));
      }
    }
    const facts = JSON.parse(this.#core.takeFacts());
    if (facts.length) {
      this.#facts.push(...facts);
      for (const w of this.#waiters) w();
    }
    clearTimeout(this.#timer);
    this.#timer = null;
    const due = this.#core.nextDeadline();
    if (due >= 0 && !this.#closed) {
      this.#timer = setTimeout(() => {
        this.#core.timeout(Date.now());
        this.#pump();
      }, Math.max(0, due - Date.now()));
    }
  }

  // ---- What a test does ---------------------------------------------------------------

  /**
   * Publishes an event as another app would (`POST {hub.url}`): `context` is the event's
   * context array, or an object of key -> resource. Resolves with the hub's answer
   * (`{ id, 'context.versionId'? }`); rejects with a FhircastError (its `status`) if refused.
   */
  async publish(event, context = [], { id = randomHex(8), topic = this.topic, versionId, priorVersionId } = {}) {
    const entries = Array.isArray(context) ? context : Object.entries(context).map(([key, resource]) => ({ key, resource }));
    const body = { timestamp: new Date().toISOString(), id, event: { 'hub.topic': topic, 'hub.event': event, context: entries } };
    if (versionId !== undefined) body.event['context.versionId'] = versionId;
    if (priorVersionId !== undefined) body.event['context.priorVersionId'] = priorVersionId;
    const r = JSON.parse(this.#core.event(JSON.stringify(body), Date.now()));
    this.#pump();
    if (r.message !== undefined) throw new FhircastError(`the hub refused ${event}: ${r.message}`, 'refused', r.status);
    await settle();
    return r.body;
  }

  /**
   * A simulated app on the topic: it subscribes under `name` to `events` and answers every
   * notification as `answer` says ('accept' (default), 'refuse', 'fail', 'silent', an HTTP
   * status, `{ status, delayMs }`, or a function of the event returning one of those).
   */
  async app({ name, events = ['Patient-open', 'Patient-close', 'SyncError'], answer = 'accept', topic = this.topic } = {}) {
    const app = new SimulatedApp(this, { name, events, topic, answer });
    this.join(app);
    await settle();
    return app;
  }

  /**
   * @internal Subscribes and connects a simulated app (again, after its socket dropped: it
   * comes back as a real app does, with a new subscription).
   */
  join(app) {
    if (this.#closed) return;
    const form = new URLSearchParams({
      'hub.mode': 'subscribe',
      'hub.topic': app.topic,
      'hub.events': app.events.join(','),
      'hub.channel.type': 'websocket',
    });
    if (app.name) form.set('subscriber.name', app.name);
    const r = JSON.parse(this.#core.subscribe(form.toString(), Date.now()));
    if (r.status !== 202) throw new FhircastError(`the hub refused the app ${app.name}: ${r.message}`, 'refused', r.status);
    app.token = r.endpoint;
    this.#sockets.set(r.endpoint, app);
    this.#core.connect(r.endpoint, Date.now());
    this.#pump();
  }

  /** The subscribers, as the hub's roster (`GET {hub.url}/{topic}/subscribers`) lists them. */
  subscribers(topic = this.topic) {
    return JSON.parse(this.#core.roster(topic)).body.subscribers;
  }

  /** The current context, as `GET {hub.url}/{topic}` answers it. */
  currentContext(topic = this.topic) {
    return JSON.parse(this.#core.context(topic)).body;
  }

  /**
   * Everything the hub recorded (its timeline: subscriptions, events, every answer with its
   * status and latency, timeouts, closes, SyncErrors), oldest first. Filter by `fact`.
   */
  timeline(filter = {}) {
    return this.#facts.filter((f) => Object.entries(filter).every(([k, v]) => f[k] === v));
  }

  /** The answers the subscriber `name` gave, oldest first: `{ id, event, status, ms }`. */
  answersOf(name) {
    return this.timeline({ fact: 'answered', subscriber: name }).map((f) => ({ id: f.id, event: f.event, status: f.status, ms: f.latencyMs }));
  }

  /** The SyncErrors the hub sent, oldest first (who could not follow what, and why). */
  syncErrors() {
    return this.timeline({ fact: 'syncError' });
  }

  /**
   * Resolves when a recorded fact matches `filter` (an object of fields, or a function);
   * rejects after `timeoutMs` of real time with what was recorded.
   */
  waitFor(filter, { timeoutMs = 5_000 } = {}) {
    const match = typeof filter === 'function' ? filter : (f) => Object.entries(filter).every(([k, v]) => f[k] === v);
    const found = this.#facts.find(match);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const check = () => {
        const f = this.#facts.find(match);
        if (f) done(() => resolve(f));
      };
      const timer = realSetTimeout(() => {
        done(() => reject(new FhircastError(`no fact ${typeof filter === 'function' ? 'matching' : JSON.stringify(filter)} within ${timeoutMs} ms; recorded: ${JSON.stringify(this.#facts.map((f) => f.fact))}`, 'timeout')));
      }, timeoutMs);
      const done = (f) => {
        realClearTimeout(timer);
        this.#waiters.delete(check);
        f();
      };
      this.#waiters.add(check);
    });
  }

  // ---- Faults -------------------------------------------------------------------------

  /**
   * Drops the socket of the subscriber `name` (by default, every app under test's) as a
   * network failure does: the app sees close 1006, the hub treats it as lost (the others get
   * a SyncError if it owed an answer).
   */
  async dropSocket(name) {
    const tokens = this.#named(name);
    for (const t of tokens) {
      const s = this.#sockets.get(t);
      this.#sockets.delete(t);
      this.#core.close(t, 1006, Date.now());
      later(() => s.closedByHub(1006, '', false));
    }
    this.#pump();
    await settle();
    return tokens.length;
  }

  /** Ends the lease of the subscriber `name` now (by default every app under test's). */
  async expireLease(name) {
    const tokens = this.#named(name);
    for (const t of tokens) this.#core.expireLease(t, Date.now());
    this.#pump();
    await settle();
    return tokens.length;
  }

  /**
   * Restarts the hub as a Durable Object restarts: its state is kept (the context, the
   * subscriptions' records), every socket drops (1006), and apps must reconnect.
   */
  async restart() {
    const dropped = JSON.parse(this.#core.restart(Date.now()));
    for (const t of dropped) {
      const s = this.#sockets.get(t);
      this.#sockets.delete(t);
      if (s) later(() => s.closedByHub(1006, '', false));
    }
    this.#pump();
    await settle();
    return dropped.length;
  }

  /**
   * A SyncError about the current context, sent by the simulated app `from` as an app does when
   * it accepted an event and then could not follow it (req 75): the hub relays it to every
   * subscriber of SyncError.
   */
  async syncError({ from = 'Test app', diagnostics, eventId, eventName, topic = this.topic } = {}) {
    const last = this.timeline({ fact: 'event', topic })
      .filter((f) => (eventName ? f.event === eventName : !/^syncerror$/i.test(f.event)))
      .at(-1);
    const id = eventId ?? last?.id;
    const name = eventName ?? last?.event;
    if (!id || !name) throw new FhircastError('no event to raise a SyncError about: publish one first, or give eventId and eventName', 'argument');
    const outcome = JSON.parse(syncErrorOutcome(id, name, from, diagnostics ?? `${from} could not follow ${name} ${id}`));
    return this.publish('SyncError', [{ key: 'operationoutcome', resource: outcome }], { topic });
  }

  #named(name) {
    return [...this.#sockets.entries()]
      .filter(([, s]) => (name === undefined ? s instanceof TestSocket : s.name === name))
      .map(([t]) => t);
  }

  /** Closes every socket (1001, going away), stops the timers, and uninstalls the hub. */
  async close() {
    this.#closed = true;
    clearTimeout(this.#timer);
    for (const [t, s] of this.#sockets) {
      this.#core.close(t, 1001, Date.now());
      later(() => s.closedByHub(1001, 'test hub closed', true));
    }
    this.#sockets.clear();
    this.#core.outbound();
    for (const t of this.#pendingAnswers) clearTimeout(t);
    // The apps are told before fetch and WebSocket are given back: a client still open reconnects
    // against this closed hub (503), not the network.
    await settle();
    this.uninstall();
  }

  /** @internal A simulated app's late answer, cleared if the hub closes first. */
  later(f, ms) {
    const t = setTimeout(() => {
      this.#pendingAnswers.delete(t);
      f();
    }, ms);
    this.#pendingAnswers.add(t);
  }

  /** @internal Whether the hub is closed. */
  get closed() {
    return this.#closed;
  }
}

/** Lets queued deliveries run: a few rounds of microtasks and one macrotask-free pass. */
async function settle() {
  for (let i = 0; i < 20; i++) await Promise.resolve();
}

/**
 * The WebSocket an app gets for the test hub's endpoints: the browser's API (readyState,
 * on* properties, addEventListener, send, close), events delivered as microtasks.
 */
class TestSocket extends EventTarget {
  static CONNECTING = 0;
  static OPEN = 1;
  static CLOSING = 2;
  static CLOSED = 3;
  CONNECTING = 0;
  OPEN = 1;
  CLOSING = 2;
  CLOSED = 3;
  #hub;
  readyState = 0;
  protocol = '';
  extensions = '';
  binaryType = 'blob';
  bufferedAmount = 0;
  onopen = null;
  onmessage = null;
  onclose = null;
  onerror = null;
  token = null;
  name = undefined;

  constructor(hub, url) {
    super();
    this.#hub = hub;
    this.url = String(url);
    hub.open(this, this.url);
  }

  #emit(type, props = {}) {
    const e = Object.assign(new Event(type), props);
    this[`on${type}`]?.call(this, e);
    this.dispatchEvent(e);
  }

  /** @internal */
  opened() {
    this.readyState = 1;
    this.#emit('open');
  }

  /** @internal */
  fail() {
    this.readyState = 3;
    this.#emit('error');
    this.#emit('close', { code: 1006, reason: '', wasClean: false });
  }

  /** @internal A message from the hub. */
  deliver(text) {
    if (this.readyState === 1) this.#emit('message', { data: text, origin: new URL(this.url).origin });
  }

  /** @internal The hub closed the socket, or the connection was lost (`clean` false). */
  closedByHub(code, reason, clean) {
    if (this.readyState === 3) return;
    this.readyState = 3;
    if (!clean) this.#emit('error');
    this.#emit('close', { code, reason, wasClean: clean });
  }

  send(data) {
    if (this.readyState === 0) throw new DOMException("Failed to execute 'send' on 'WebSocket': Still in CONNECTING state.", 'InvalidStateError');
    if (this.readyState !== 1) return;
    this.#hub.received(this.token, data);
  }

  close(code = 1005, reason = '') {
    if (this.readyState >= 2) return;
    if (this.readyState === 0) {
      // Closed before it opened: as a browser does, an error, then close 1006, not clean.
      this.readyState = 2;
      later(() => this.fail());
      return;
    }
    this.readyState = 2;
    later(() => {
      this.readyState = 3;
      // A close without a code reaches the hub as 1005, which it takes for a lost connection
      // (the others are told if this app owed an answer), as the deployed hub does.
      if (this.token) this.#hub.closedBy(this.token, code);
      this.#emit('close', { code, reason, wasClean: true });
    });
  }
}

/** Another app on the topic, run by the test hub: it answers as it is told. */
export class SimulatedApp {
  #hub;
  /** Every event it was sent, oldest first (the notification's `event`, with `id` and `timestamp`). */
  received = [];
  /** The SyncErrors it was sent. */
  syncErrors = [];
  /** Whether it is off the topic: it left, or the hub ended its subscription (denied, closed). */
  closed = false;
  /** @internal Its endpoint token. */
  token = null;

  /** @internal Use hub.app(). */
  constructor(hub, { name, events, topic, answer }) {
    this.#hub = hub;
    this.name = name;
    this.events = events;
    this.topic = topic;
    /** How it answers the next notifications; change it between events. */
    this.answer = answer;
  }

  /** @internal */
  deliver(text) {
    let msg;
    try {
      msg = JSON.parse(text);
    } catch {
      return;
    }
    if (!msg.event || !msg.id) return; // a confirmation or a denial (req 43, 56)
    const event = { id: msg.id, timestamp: msg.timestamp, ...msg.event };
    const isSyncError = String(event['hub.event']).toLowerCase() === 'syncerror';
    (isSyncError ? this.syncErrors : this.received).push(event);
    let a = typeof this.answer === 'function' && !isSyncError ? this.answer(event) : this.answer;
    if (isSyncError && a !== 'silent') a = 'accept'; // a SyncError is always acknowledged
    if (a === 'silent') return;
    const { status, delayMs = 0 } = typeof a === 'object' && a ? a : { status: a };
    const code =
      status === 'accept' || status === undefined || status === true ? 200 : status === 'refuse' || status === false ? 409 : status === 'fail' ? 500 : Number(status);
    const token = this.token;
    const send = () => !this.closed && token === this.token && this.#hub.received(token, JSON.stringify({ id: msg.id, status: String(code) }));
    if (delayMs > 0) this.#hub.later(send, delayMs);
    else send();
  }

  /** @internal Its socket closed: by the hub (it is off the topic), or lost (it comes back). */
  closedByHub(code, reason, clean) {
    if (clean || this.closed) {
      this.closed = true;
      return;
    }
    this.token = null;
    later(() => !this.closed && this.#hub.join(this));
  }

  /** Publishes an event from this app (as `hub.publish` does). */
  publish(event, context, options = {}) {
    return this.#hub.publish(event, context, { topic: this.topic, ...options });
  }

  /** Leaves the topic: closes its socket with 1000 (an unsubscribe, req 49). */
  async leave() {
    if (this.closed) return;
    this.closed = true;
    if (this.token) this.#hub.closedBy(this.token, 1000);
    await settle();
  }
}

function text(status, body) {
  return new Response(body, { status, headers: { 'content-type': 'text/plain; charset=utf-8' } });
}
function json(status, body) {
  return new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });
}
/** The hub's OperationOutcome for a refused event or read (core/src/outcome.rs). */
function outcome(status, diagnostics) {
  return new Response(operationOutcome(status, diagnostics), { status, headers: { 'content-type': 'application/fhir+json' } });
}
