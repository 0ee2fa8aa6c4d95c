// fhircast-sdk: the FHIRcast 3.0.0 subscriber SDK for browsers (and Node >= 22, workers).
// ESM facade over the WebAssembly core. This is the source: scripts/build-sdk.sh bundles it with
// wasm-bindgen's glue (../pkg/fhircast_sdk.js) into the package's one JS file, pkg/index.js,
// minified, next to pkg/fhircast_sdk_bg.wasm. Types: ../index.d.ts.
import wasmInit, { FhircastClient as WasmClient } from '../pkg/fhircast_sdk.js';
import { FhircastError, withResource } from './shared.js';

export { FhircastError };

let loading = null;
let ready = false;

/**
 * Loads the WebAssembly module. Call it once, and await it, before anything else.
 * `wasm` is where to load it from (a URL, a Response, bytes or a compiled module); by
 * default `fhircast_sdk_bg.wasm` next to this package's `pkg/fhircast_sdk.js`.
 */
export default function init(wasm) {
  if (!loading) {
    loading = wasmInit({ module_or_path: wasm ?? defaultWasm() }).then(
      () => {
        ready = true;
      },
      (e) => {
        loading = null;
        throw e;
      },
    );
  }
  return loading;
}

// The .wasm next to this file. Node's fetch cannot read file: URLs, so there it is read from
// disk, through process.getBuiltinModule (Node >= 22.3): an import('node:fs/promises') would
// break the browser builds of bundlers that resolve it.
function defaultWasm() {
  const url = new URL('fhircast_sdk_bg.wasm', import.meta.url);
  const fs = url.protocol === 'file:' && globalThis.process?.getBuiltinModule?.('fs/promises');
  return fs ? fs.readFile(url) : url;
}

function assertReady() {
  if (!ready) {
    throw new FhircastError(
      'the WebAssembly module is not loaded yet. Call `await init()` (the default export: ' +
        "`import init, { FhircastClient } from 'fhircast-sdk'`) once before using FhircastClient.",
      'not-initialized',
    );
  }
  if (typeof WebSocket !== 'function') {
    const node = globalThis.process?.versions?.node;
    throw new FhircastError(
      'this runtime has no global WebSocket, which the SDK needs' +
        (node ? ` (Node ${node}: Node 22 or later has one; or set globalThis.WebSocket, e.g. from the ws package)` : ''),
      'unsupported-runtime',
    );
  }
}

const LISTENERS = ['onSyncError', 'onStatusChange', 'onContextChange'];

/** A FHIRcast subscriber: one subscription to one topic, followed over a WebSocket. */
/** A handler or a context listener as the core calls it: its argument gets `resource(key)`. */
const wrapped = new WeakMap();
function wrap(f, ofEvent) {
  if (typeof f != 'function') return f; // the core says what is wrong with it
  if (!wrapped.has(f)) wrapped.set(f, (x) => f(withResource(x, ofEvent ? x?.event?.context : x?.context)));
  return wrapped.get(f);
}

export class FhircastClient {
  #c;

  /** @internal Use FhircastClient.connect() or FhircastClient.fromSmartLaunch(). */
  constructor(inner) {
    if (!(inner instanceof WasmClient)) {
      throw new FhircastError('use `await FhircastClient.connect(options)` to create a client', 'argument');
    }
    this.#c = inner;
  }

  /** Subscribes, connects, and resolves once the hub confirmed the subscription. */
  static connect(options) {
    try {
      assertReady();
      const on = options?.on;
      if (on && typeof on == 'object') options = { ...options, on: Object.fromEntries(Object.entries(on).map(([k, h]) => [k, wrap(h, 1)])) };
      if (options?.onContextChange) options = { ...options, onContextChange: wrap(options.onContextChange) };
      return WasmClient.connect(options).then((inner) => new FhircastClient(inner));
    } catch (e) {
      return Promise.reject(e); // bad options: a rejection, like every other failure
    }
  }

  /**
   * Connects with what a SMART launch's token response carries: `hub.url`, `hub.topic` and
   * `access_token` (FHIRcast req 7). `options` adds `events` and the rest, and may override them.
   */
  static fromSmartLaunch(tokenResponse, options = {}) {
    const hubUrl = options.hubUrl ?? tokenResponse?.['hub.url'];
    const topic = options.topic ?? tokenResponse?.['hub.topic'];
    if (!hubUrl || !topic) {
      return Promise.reject(new FhircastError(
        'the SMART token response has no "hub.url" and "hub.topic": request a fhircast/ scope ' +
          '(e.g. fhircast/Patient-open.read) when launching, and use an EHR that supports FHIRcast (req 7)',
        'option',
      ));
    }
    return FhircastClient.connect({ accessToken: tokenResponse.access_token, ...options, hubUrl, topic });
  }

  /** The topic this client follows. */
  get topic() {
    return this.#c.topic;
  }

  /** Sets the handler of an event (case-insensitive; '*' for any other). Returns a remover. */
  on(eventName, handler) {
    handler = wrap(handler, 1);
    this.#c.on(eventName, handler);
    return () => this.#c.off(eventName, handler);
  }

  /** Called with the details of every SyncError received. Returns a remover. */
  onSyncError(callback) {
    return this.#listen(LISTENERS[0], callback);
  }

  /** Called with the new status whenever it changes. Returns a remover. */
  onStatusChange(callback) {
    return this.#listen(LISTENERS[1], callback);
  }

  /** Called with what the app should show (or null) whenever that changes. Returns a remover. */
  onContextChange(callback) {
    return this.#listen(LISTENERS[2], wrap(callback));
  }

  #listen(kind, callback) {
    this.#c.listen(kind, callback);
    return () => this.#c.unlisten(kind, callback);
  }

  /** Sends an event; resolves with its id once the hub accepted it and its echo arrived. */
  async publish(eventName, context) {
    return this.#c.publish(eventName, context);
  }

  /** Shares content: a `<Type>-update` of `anchor` ("Type/id") with the tracked version. */
  async update(anchor, changes) {
    return this.#c.update(anchor, changes);
  }

  /** Selects resources ("Type/id") in the current anchor; `[]` clears the selection. */
  async select(anchor, references) {
    return this.#c.select(anchor, references);
  }

  /** Decides about an event whose handler returned 'defer'. */
  decide(eventId, outcome) {
    this.#c.decide(eventId, outcome);
  }

  /** What the app should show, or null. */
  currentContext() {
    const c = this.#c.currentContext();
    return withResource(c, c?.context);
  }

  /** Whether the app shows what the hub holds: {state, reason?}. */
  status() {
    return this.#c.status();
  }

  /** Unsubscribes, closes the WebSocket with code 1000 and stops all timers. */
  close() {
    return this.#c.close();
  }
}
