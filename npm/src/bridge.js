// FhircastBridge (issue 16): the EHR page's side of embedding apps without giving them a token,
// the hub's URL or a WebSocket. An embedded app (fhircast-sdk/embedded, in an iframe) says hello
// to its parent over postMessage with a MessagePort; the bridge checks the iframe's origin
// against the EHR's allow-list and, for each app it accepts, holds a subscription on the app's
// behalf — a FhircastClient of the main SDK with the app's own subscriber.name and events. The
// hub sees each embedded app as its own subscriber: its answers, refusals, timeouts and
// SyncErrors are the app's, named after it.
//
// The bridge is a pump: the core (inside each FhircastClient) decides the protocol — which
// events, how an answer maps to an ack, what the app may publish — and the bridge only carries
// the app's calls and answers over the app's private port. Nothing of the EHR's (its token, the
// hub URL, other apps' messages) is ever posted to an iframe. Built by scripts/build-sdk.sh into
// pkg/bridge.js, next to pkg/index.js, which it imports; types: ../bridge.d.ts.
//
//   import init from 'fhircast-sdk';
//   import { FhircastBridge } from 'fhircast-sdk/bridge';
//   await init();
//   const bridge = new FhircastBridge({ hubUrl, topic, accessToken, allowedOrigins: ['https://viewer.example'] });
//   bridge.start();
import { FhircastClient, FhircastError } from './index.js';

/** The messages' protocol version (an app and a bridge of different versions refuse each other). */
const VERSION = 1;
/** How often the bridge looks for iframes that went away (removed without a goodbye). */
const GONE_CHECK_MS = 1000;
/** The calls an embedded app may make on its subscription. */
const CALLS = new Set(['publish', 'update', 'select', 'decide']);

export class FhircastBridge {
  /**
   * @param {object} options
   * @param {string} options.hubUrl the hub (hub.url); never given to an app
   * @param {string} options.topic the session (hub.topic)
   * @param {string | (() => string | Promise<string>)} [options.accessToken] the EHR's token; never given to an app
   * @param {string[]} options.allowedOrigins the origins whose iframes may connect, e.g. `['https://viewer.example']`
   * @param {{ warn(...a: unknown[]): void, info(...a: unknown[]): void }} [options.log] where refusals and departures are logged (console)
   */
  constructor({ hubUrl, topic, accessToken, allowedOrigins, log = console } = {}) {
    if (typeof hubUrl !== 'string' || typeof topic !== 'string') {
      throw new FhircastError('FhircastBridge needs hubUrl and topic (strings)', 'option');
    }
    if (!Array.isArray(allowedOrigins) || allowedOrigins.some((o) => typeof o !== 'string' || o === '*' || o.endsWith('/'))) {
      throw new FhircastError('FhircastBridge needs allowedOrigins: an array of origins such as "https://viewer.example" (no "*", no trailing slash)', 'option');
    }
    this.hubUrl = hubUrl;
    this.topic = topic;
    this.accessToken = accessToken;
    this.allowed = new Set(allowedOrigins);
    this.log = log;
    /** @type {Set<Bridged>} */
    this.bridged = new Set();
    this.onMessage = (e) => this.hello(e);
    this.timer = null;
  }

  /** Starts accepting embedded apps. */
  start() {
    addEventListener('message', this.onMessage);
    this.timer ??= setInterval(() => {
      for (const app of this.bridged) if (app.source?.closed) app.end('its iframe is gone');
    }, GONE_CHECK_MS);
    return this;
  }

  /** The apps connected through this bridge: their names and origins. */
  apps() {
    return [...this.bridged].map((a) => ({ subscriberName: a.name, origin: a.origin, state: a.client?.status().state ?? 'connecting' }));
  }

  /** Stops accepting apps and ends every bridged subscription (unsubscribed, closed with 1000). */
  async close() {
    removeEventListener('message', this.onMessage);
    clearInterval(this.timer);
    this.timer = null;
    await Promise.all([...this.bridged].map((a) => a.end('the bridge closed')));
  }

  hello(e) {
    const d = e.data;
    if (!d || typeof d !== 'object' || d.fhircast !== 'hello') return;
    if (!this.allowed.has(e.origin)) {
      this.log.warn(`FhircastBridge: ignored an app from ${e.origin}: not in allowedOrigins`);
      return;
    }
    const port = e.ports?.[0];
    if (!port) return;
    if (d.version !== VERSION) {
      port.postMessage({ t: 'error', code: 'option', message: `this bridge speaks version ${VERSION} of the embedding protocol, the app ${d.version}: use the same fhircast-sdk version in the EHR page and the app` });
      return;
    }
    // The same iframe saying hello again (it navigated or reloaded): its old subscription ends.
    for (const a of this.bridged) if (a.source && a.source === e.source) a.end('its iframe loaded a new page');
    const app = new Bridged(this, port, e.source, e.origin, d);
    this.bridged.add(app);
    app.connect();
  }
}

/** One embedded app and the subscription held for it. */
class Bridged {
  constructor(bridge, port, source, origin, hello) {
    this.bridge = bridge;
    this.port = port;
    this.source = source;
    this.origin = origin;
    this.name = typeof hello.subscriberName === 'string' ? hello.subscriberName : undefined;
    this.events = hello.events;
    this.client = null;
    this.ended = false;
    /** Answers awaited from the app, by event id. */
    this.answers = new Map();
    port.onmessage = (m) => this.receive(m.data);
  }

  post(message) {
    if (!this.ended) this.port.postMessage(message);
  }

  async connect() {
    const b = this.bridge;
    try {
      this.client = await FhircastClient.connect({
        hubUrl: b.hubUrl,
        topic: b.topic,
        accessToken: b.accessToken,
        events: this.events,
        subscriberName: this.name,
        // Every event the app subscribed to goes to the app; its answer is the handler's.
        on: { '*': (event) => this.ask(event) },
        onStatusChange: (status) => this.post({ t: 'status', status }),
        onContextChange: (context) => this.post({ t: 'context', context }),
        onSyncError: (details) => this.post({ t: 'syncError', details }),
      });
      if (this.ended) {
        await this.client.close();
        return;
      }
      this.post({ t: 'ready', topic: this.client.topic, status: this.client.status(), context: this.client.currentContext() });
      b.log.info?.(`FhircastBridge: ${this.name ?? 'an unnamed app'} from ${this.origin} follows ${b.topic}`);
    } catch (e) {
      // The hub's or the core's reason, without the hub's URL.
      this.post({ t: 'error', code: e?.code ?? 'other', message: redact(String(e?.message ?? e), b.hubUrl) });
      this.bridge.bridged.delete(this);
      this.ended = true;
    }
  }

  ask(event) {
    return new Promise((resolve) => {
      this.answers.set(event.id, resolve);
      this.post({ t: 'event', event });
    });
  }

  async receive(m) {
    if (!m || typeof m !== 'object') return;
    if (m.t === 'answer') {
      const resolve = this.answers.get(m.id);
      this.answers.delete(m.id);
      resolve?.(['accept', 'refuse', 'defer', 'fail'].includes(m.result) ? m.result : 'fail');
    } else if (m.t === 'call') {
      if (!CALLS.has(m.method) || !this.client || !Array.isArray(m.args)) {
        this.post({ t: 'result', req: m.req, error: { code: 'argument', message: `${m.method} is not something an embedded app can call` } });
        return;
      }
      try {
        const value = await this.client[m.method](...m.args);
        this.post({ t: 'result', req: m.req, value });
      } catch (e) {
        this.post({ t: 'result', req: m.req, error: { code: e?.code ?? 'other', message: redact(String(e?.message ?? e), this.bridge.hubUrl), status: e?.status } });
      }
    } else if (m.t === 'bye') {
      await this.end('it said goodbye');
    }
  }

  /** Ends the subscription (unsubscribe, close 1000), once. */
  async end(why) {
    if (this.ended) return;
    this.ended = true;
    this.bridge.bridged.delete(this);
    for (const resolve of this.answers.values()) resolve('fail');
    this.answers.clear();
    this.port.onmessage = null;
    this.port.close();
    this.bridge.log.info?.(`FhircastBridge: ${this.name ?? 'an unnamed app'} from ${this.origin} left: ${why}`);
    await this.client?.close().catch(() => {});
  }
}

/** `text` without the hub's URL or origin (an app is not told where the hub is). */
function redact(text, hubUrl) {
  let origin = '';
  try {
    origin = new URL(hubUrl).origin;
  } catch {}
  return [hubUrl, origin].filter(Boolean).reduce((t, s) => t.split(s).join('the hub'), text);
}
