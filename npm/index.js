// fhircast-sdk: the FHIRcast 3.0.0 subscriber SDK for browsers.
// ESM facade over the WebAssembly core (./pkg, built by scripts/build-sdk.sh). Types: index.d.ts.
import wasmInit, { FhircastClient as WasmClient } from './pkg/fhircast_sdk.js';

let loading = null;
let ready = false;

/**
 * Loads the WebAssembly module. Call it once, and await it, before anything else.
 * `wasm` is where to load it from (a URL, a Response, bytes or a compiled module); by
 * default `fhircast_sdk_bg.wasm` next to this package's `pkg/fhircast_sdk.js`.
 */
export default function init(wasm) {
  if (!loading) {
    loading = wasmInit(wasm === undefined ? undefined : { module_or_path: wasm }).then(
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

function assertReady() {
  if (!ready) {
    throw new Error(
      'fhircast-sdk: the WebAssembly module is not loaded yet. Call `await init()` (the default export: ' +
        "`import init, { FhircastClient } from 'fhircast-sdk'`) once before using FhircastClient.",
    );
  }
}

const LISTENERS = ['onSyncError', 'onStatusChange', 'onContextChange'];

/** A FHIRcast subscriber: one subscription to one topic, followed over a WebSocket. */
export class FhircastClient {
  #c;

  /** @internal Use FhircastClient.connect() or FhircastClient.fromSmartLaunch(). */
  constructor(inner) {
    if (!(inner instanceof WasmClient)) {
      throw new TypeError('fhircast-sdk: use `await FhircastClient.connect(options)` to create a client');
    }
    this.#c = inner;
  }

  /** Subscribes, connects, and resolves once the hub confirmed the subscription. */
  static connect(options) {
    assertReady();
    try {
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
    assertReady();
    const hubUrl = options.hubUrl ?? tokenResponse?.['hub.url'];
    const topic = options.topic ?? tokenResponse?.['hub.topic'];
    if (!hubUrl || !topic) {
      return Promise.reject(new Error(
        'fhircast-sdk: the SMART token response has no "hub.url" and "hub.topic": request a fhircast/ scope ' +
          '(e.g. fhircast/Patient-open.read) when launching, and use an EHR that supports FHIRcast (req 7)',
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
    return this.#listen(LISTENERS[2], callback);
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
    return this.#c.currentContext();
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
