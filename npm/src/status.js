// <fhircast-status>: a drop-in banner that tells the user whether this app shows the session's
// context, and when it does not, why (who could not follow what). It only uses the client's
// public API (status, onStatusChange, onContextChange), so it loads no WebAssembly of its own.
// Built by scripts/build-sdk.sh into pkg/status.js; types: ../status.d.ts.
//
//   import { FhircastStatus } from 'fhircast-sdk/status'; // defines <fhircast-status>
//   document.querySelector('fhircast-status').client = client;
//
// Accessible: the text is a live region, polite while in sync or connecting, assertive (role
// alert) when the app is out of sync or disconnected, so screen readers announce it at once.
// Themable: CSS custom properties (below) and ::part(banner), ::part(title), ::part(detail).

const STYLE = `
:host { display: block; font: var(--fhircast-status-font, inherit); }
:host([hidden]), :host([quiet][data-state="in-sync"]) { display: none; }
[part=banner] {
  display: flex; gap: .5em; align-items: baseline; flex-wrap: wrap;
  padding: var(--fhircast-status-padding, .4em .8em);
  border-radius: var(--fhircast-status-radius, 4px);
  color: var(--fhircast-status-color, #111);
  background: var(--fhircast-status-connecting-bg, #e8eaed);
}
:host([data-state="in-sync"]) [part=banner] { background: var(--fhircast-status-in-sync-bg, #e6f4ea); }
:host([data-state="out-of-sync"]) [part=banner] { background: var(--fhircast-status-out-of-sync-bg, #fce8b2); }
:host([data-state="disconnected"]) [part=banner] { background: var(--fhircast-status-disconnected-bg, #fad2cf); }
[part=title] { font-weight: 600; }
`;

/** A short name for what the app shows: the patient's name when the context has it. */
function describe(context) {
  if (!context) return 'nothing open';
  const resource = context.context?.find((c) => c.resource?.resourceType + '/' + c.resource?.id === context.anchor)?.resource;
  const name = resource?.name?.[0];
  const text = name?.text ?? [name?.given?.join(' '), name?.family].filter(Boolean).join(' ');
  return text ? `${text} (${context.anchor})` : context.anchor;
}

/** Title and detail for a status: what the user needs to know, then why. */
function explain(status, context) {
  const r = status.reason ?? {};
  switch (status.state) {
    case 'in-sync':
      return ['In sync', describe(context)];
    case 'connecting':
      return ['Connecting…', 'joining the session'];
    case 'disconnected':
      return ['Not connected', `reconnecting; what this app shows may be out of date (${r.message})`];
  }
  switch (r.kind) {
    case 'sync-error':
      return [`Out of sync: ${r.subscriberName} did not follow ${r.eventName}`, r.message];
    case 'own-event-not-followed':
      return [`Out of sync: ${r.subscriberName} did not follow your ${r.eventName}`, `sending it again (${r.message})`];
    case 'refused':
      return ['Out of sync: the previous context is kept here', `${r.eventName} was not followed; the other apps show the new one`];
    case 'deciding':
      return [`Not in sync yet: ${r.eventName} is waiting for an answer here`, 'the other apps may already show it'];
    default:
      return ['Out of sync', r.message];
  }
}

// Importable where there is no DOM (server rendering, Node): the element is defined only where
// custom elements exist.
const Base = globalThis.HTMLElement ?? class {};

export class FhircastStatus extends Base {
  #client = null;
  #removers = [];
  #title;
  #detail;
  #banner;

  constructor() {
    super();
    const root = this.attachShadow({ mode: 'open' });
    root.innerHTML = `<style>${STYLE}</style><div part="banner" role="status" aria-live="polite" aria-atomic="true"><span part="title"></span><span part="detail"></span></div>`;
    this.#banner = root.querySelector('[part=banner]');
    this.#title = root.querySelector('[part=title]');
    this.#detail = root.querySelector('[part=detail]');
    this.#show({ state: 'connecting' }, null);
  }

  /** The FhircastClient whose status is shown (set it once connected; null detaches). */
  get client() {
    return this.#client;
  }

  set client(client) {
    this.#detach();
    this.#client = client;
    if (!client) return this.#show({ state: 'connecting' }, null);
    const update = () => this.#show(client.status(), client.currentContext());
    this.#removers = [client.onStatusChange(update), client.onContextChange(update)];
    update();
  }

  disconnectedCallback() {
    this.#detach();
  }

  connectedCallback() {
    if (this.#client && !this.#removers.length) this.client = this.#client;
  }

  #detach() {
    for (const remove of this.#removers) remove();
    this.#removers = [];
  }

  #show(status, context) {
    const [title, detail] = explain(status, context);
    const urgent = status.state === 'out-of-sync' || status.state === 'disconnected';
    this.dataset.state = status.state;
    this.#banner.setAttribute('role', urgent ? 'alert' : 'status');
    this.#banner.setAttribute('aria-live', urgent ? 'assertive' : 'polite');
    this.#title.textContent = title;
    this.#detail.textContent = detail ?? '';
  }
}

if (globalThis.customElements && !customElements.get('fhircast-status')) customElements.define('fhircast-status', FhircastStatus);
