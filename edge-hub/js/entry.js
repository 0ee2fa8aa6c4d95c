// The Worker's entry module (scripts/build-hub.sh bundles it with wasm-bindgen's glue into
// edge-hub/build/index.js). It binds the runtime's classes to the Rust code and nothing else:
//
// - the default export, a WorkerEntrypoint whose fetch is the Rust `fetch` (entry.rs);
// - `TopicObject`, a DurableObject subclass holding one Rust `TopicObject` (topic_object.rs) and
//   calling it directly: event requests (the RPC method `publish`, which workerd offers only on
//   a DurableObject subclass) and the WebSocket events synchronously, fetch and alarm awaited.
//
// Why not worker-build's entry module: it wraps every Durable Object in a Proxy whose `get`
// makes a new Proxy for each method called, so each subscriber answer (N per event) paid for
// two Proxies and an `apply` trap: the largest single item of the hub's JS time at a thousand
// subscribers (ARCHITECTURE.md, "The hub's entry module"; BENCHMARKS.md).
//
// Panic recovery, as worker-build's module does it, at the cost of one check per call: a Rust
// panic aborts the wasm instance (wasm-bindgen's --force-enable-abort-handler marks it
// terminated, workers-rs's panic hook sets `criticalError`), and a WebAssembly.RuntimeError
// seen here does the same. The next call re-instantiates the module
// (--experimental-reset-state-function) and each TopicObject rebuilds its Rust object, which
// reloads the topic from storage, so one bad input cannot poison the isolate for every topic it
// serves (tests/hub/recovery.test.mjs).
import { DurableObject, WorkerEntrypoint } from 'cloudflare:workers';
import * as rust from './index.js';

Error.stackTraceLimit = 100;
const init = rust.__worker_init_state();

/** Re-instantiates the wasm module after a panic, before anything calls into it again. */
function recover() {
  if (init.criticalError) {
    console.log('Reinitializing Wasm application');
    rust.__wbg_reset_state();
    init.criticalError = false;
    init.instanceId++;
  }
}

/**
 * A trap in the wasm code leaves its instance unusable: mark it for `recover`. Also a stack
 * overflow (V8 throws a RangeError, inside wasm as in JS) and wasm-bindgen's own refusal of a
 * terminated instance.
 */
function critical(e) {
  const overflow = e instanceof RangeError && /call stack/i.test(e.message);
  if (e instanceof WebAssembly.RuntimeError || overflow || (e instanceof Error && e.message === 'Module terminated')) {
    console.error('Critical', e);
    init.criticalError = true;
  }
}

addEventListener('error', (e) => critical(e.error));

export default class Hub extends WorkerEntrypoint {
  fetch(request) {
    recover();
    return guarded(() => rust.fetch(request, this.env, this.ctx));
  }
}

/** Calls `f`, marking the instance for `recover` if the wasm code trapped (sync or async). */
function guarded(f) {
  try {
    const r = f();
    return r instanceof Promise ? r.catch((e) => (critical(e), Promise.reject(e))) : r;
  } catch (e) {
    critical(e);
    throw e;
  }
}

export class TopicObject extends DurableObject {
  #object = null;
  #instance = -1;

  constructor(ctx, env) {
    super(ctx, env);
    this.#rust();
  }

  /** The Rust object, made again after a recovery (its topic reloads from storage). */
  #rust() {
    recover();
    if (this.#instance !== init.instanceId) {
      this.#object = new rust.TopicObject(this.ctx, this.env);
      this.#instance = init.instanceId;
    }
    return this.#object;
  }

  fetch(request) {
    const o = this.#rust();
    return guarded(() => o.fetch(request));
  }

  alarm() {
    const o = this.#rust();
    return guarded(() => o.alarm());
  }

  /** An event request from the Worker, over RPC (topic_object.rs `publish`). */
  publish(topic, auth, rid, body) {
    const o = this.#rust();
    return guarded(() => o.publish(topic, auth, rid, body));
  }

  webSocketMessage(ws, message) {
    const o = this.#rust();
    guarded(() => o.webSocketMessage(ws, message));
  }

  webSocketClose(ws, code, reason, wasClean) {
    const o = this.#rust();
    guarded(() => o.webSocketClose(ws, code, reason, wasClean));
  }

  webSocketError(ws, error) {
    const o = this.#rust();
    guarded(() => o.webSocketError(ws, error));
  }
}
