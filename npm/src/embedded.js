// fhircast-sdk/embedded (issue 16): the client an app embedded in an EHR's page uses when the
// page runs a FhircastBridge (fhircast-sdk/bridge). The same API as FhircastClient — handlers
// and their answers, decide, publish, update, select, currentContext, status, onSyncError —
// with no hub URL, no token and no WebSocket in the iframe: the parent holds the subscription
// for the app and carries its calls and answers over a private MessagePort. It loads no
// WebAssembly (the protocol runs in the parent's SDK). Built by scripts/build-sdk.sh into
// pkg/embedded.js; types: ../embedded.d.ts.
//
//   import { FhircastClient } from 'fhircast-sdk/embedded';
//   const client = await FhircastClient.connectViaParent({
//     events: ['Patient-open', 'Patient-close'], subscriberName: 'Viewer',
//     on: { 'Patient-open': (event) => show(event) },
//   });

import { FhircastError, withResource } from './shared.js';

export { FhircastError };

const VERSION = 1;

/** What a handler returned, as the bridge takes it (HandlerResult, req 71, 75). */
function outcome(result) {
  if (result === undefined || result === true || result === 'accept') return 'accept';
  if (result === false || result === 'refuse') return 'refuse';
  if (result === 'defer' || result === 'fail') return result;
  return 'fail';
}

export class FhircastClient {
  /**
   * Connects through the parent page's FhircastBridge. Resolves once the parent holds the
   * subscription and knows the current context; rejects with a FhircastError (`code`
   * `no-bridge`) when no bridge answers within `timeoutMs` (not embedded, the parent has no
   * bridge, or it does not allow this page's origin), or with the hub's refusal.
   */
  static connectViaParent({ events, subscriberName, on = {}, onSyncError, onStatusChange, onContextChange, timeoutMs = 3000 } = {}) {
    if (typeof window === 'undefined' || window.parent === window) {
      return Promise.reject(new FhircastError('connectViaParent: this page is not embedded in another page, so no FhircastBridge can hold its subscription; outside an EHR, connect to the hub with FhircastClient.connect from the main entry (fhircast-sdk)', 'no-bridge'));
    }
    const names = events ?? Object.keys(on).filter((k) => k !== '*');
    const client = new FhircastClient(new MessageChannel());
    for (const [name, handler] of Object.entries(on)) client.on(name, handler);
    if (onSyncError) client.onSyncError(onSyncError);
    if (onStatusChange) client.onStatusChange(onStatusChange);
    if (onContextChange) client.onContextChange(onContextChange);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        client.port.close();
        reject(new FhircastError(`connectViaParent: no FhircastBridge answered from the parent page within ${timeoutMs} ms: the page has none, or it does not allow this page's origin (${location.origin}) — the EHR's allowedOrigins must list it`, 'no-bridge'));
      }, timeoutMs);
      client.settle = (error) => {
        clearTimeout(timer);
        client.settle = null;
        if (error) {
          client.port.close();
          reject(error);
        } else resolve(client);
      };
      window.parent.postMessage({ fhircast: 'hello', version: VERSION, subscriberName, events: names }, '*', [client.channel.port2]);
    });
  }

  /** @private */
  constructor(channel) {
    this.channel = channel;
    this.port = channel.port1;
    this.topic = undefined;
    this.handlers = new Map();
    this.listeners = { syncError: new Set(), status: new Set(), context: new Set() };
    this.state = { state: 'connecting' };
    this.context = null;
    this.calls = new Map();
    this.nextCall = 1;
    this.closed = false;
    this.settle = null;
    this.port.onmessage = (m) => this.receive(m.data);
    this.bye = () => this.port.postMessage({ t: 'bye' });
    addEventListener('pagehide', this.bye);
  }

  receive(m) {
    if (!m || typeof m !== 'object' || this.closed) return;
    switch (m.t) {
      case 'ready':
        this.topic = m.topic;
        this.setStatus(m.status);
        this.setContext(m.context);
        this.settle?.();
        break;
      case 'error':
        this.settle?.(new FhircastError(m.message, m.code));
        break;
      case 'status':
        this.setStatus(m.status);
        break;
      case 'context':
        this.setContext(m.context);
        break;
      case 'syncError':
        for (const f of this.listeners.syncError) f(m.details);
        break;
      case 'event':
        this.handle(m.event);
        break;
      case 'result': {
        const call = this.calls.get(m.req);
        this.calls.delete(m.req);
        if (call) m.error ? call.reject(new FhircastError(m.error.message.replace(/^fhircast-sdk: /, ''), m.error.code, m.error.status)) : call.resolve(m.value);
        break;
      }
    }
  }

  async handle(event) {
    const name = String(event?.event?.['hub.event'] ?? '').toLowerCase();
    const handler = this.handlers.get(name) ?? this.handlers.get('*');
    let result;
    try {
      result = outcome(handler ? await handler(withResource(event, event?.event?.context)) : undefined);
    } catch {
      result = 'fail';
    }
    this.port.postMessage({ t: 'answer', id: event.id, result });
  }

  setStatus(status) {
    this.state = status;
    for (const f of this.listeners.status) f(status);
  }

  setContext(context) {
    this.context = withResource(context, context?.context);
    for (const f of this.listeners.context) f(context);
  }

  call(method, args) {
    if (this.closed) return Promise.reject(new FhircastError(`${method}: the client is closed`, 'closed'));
    const req = this.nextCall++;
    return new Promise((resolve, reject) => {
      this.calls.set(req, { resolve, reject });
      this.port.postMessage({ t: 'call', req, method, args });
    });
  }

  /** Sets the handler of `eventName` (one per event; '*' for any other). */
  on(eventName, handler) {
    if (typeof eventName !== 'string' || typeof handler !== 'function') throw new FhircastError('on(eventName, handler): a name and a function', 'argument');
    const key = eventName.toLowerCase();
    this.handlers.set(key, handler);
    return () => this.handlers.get(key) === handler && this.handlers.delete(key);
  }

  onSyncError(f) {
    this.listeners.syncError.add(f);
    return () => this.listeners.syncError.delete(f);
  }

  onStatusChange(f) {
    this.listeners.status.add(f);
    return () => this.listeners.status.delete(f);
  }

  onContextChange(f) {
    this.listeners.context.add(f);
    return () => this.listeners.context.delete(f);
  }

  publish(eventName, context) {
    return this.call('publish', [eventName, context]);
  }

  update(anchor, changes) {
    return this.call('update', [anchor, changes]);
  }

  select(anchor, references) {
    return this.call('select', [anchor, references]);
  }

  decide(eventId, outcomeOf) {
    this.call('decide', [eventId, outcomeOf]).catch(() => {});
  }

  currentContext() {
    return this.context;
  }

  status() {
    return this.state;
  }

  /** Ends the subscription the parent holds for this app (unsubscribed, closed with 1000). */
  async close() {
    if (this.closed) return;
    this.port.postMessage({ t: 'bye' });
    this.closed = true;
    removeEventListener('pagehide', this.bye);
    for (const c of this.calls.values()) c.reject(new FhircastError('the client was closed', 'closed'));
    this.calls.clear();
    this.port.close();
  }
}
