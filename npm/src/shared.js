// What the main entry (index.js) and the embedded entry (embedded.js) both define for an app,
// in one place; each entry's build inlines it (scripts/build-sdk.sh bundles both).

/**
 * Every error the SDK throws or rejects with. `code` says what kind of failure it is, `status`
 * is the hub's HTTP status when there was one. The WebAssembly core creates its errors as plain
 * `Error`s named `FhircastError`; `instanceof FhircastError` recognises them too, and an error
 * made by the other entry.
 */
export class FhircastError extends Error {
  constructor(message, code, status) {
    super('fhircast-sdk: ' + message);
    this.name = 'FhircastError';
    this.code = code;
    if (status !== undefined) this.status = status;
  }

  static [Symbol.hasInstance](value) {
    return value instanceof Error && value.name === 'FhircastError';
  }
}

/**
 * `resource(key)` on an event or a current context: the resource of its context entry `key`
 * (`event.resource('patient')`), without searching the array by hand. Not enumerable, so a
 * postMessage (the bridge) or JSON of the object carries only its data; the embedded entry
 * adds it again to what crossed the bridge.
 */
export function withResource(target, context) {
  if (target && typeof target == 'object' && !target.resource) {
    // A current context of an app that follows its anchor's updates carries the anchor's
    // content as the Bundles the core kept (a snapshot's, then each update applied): the
    // resources they leave, in place of the Bundles.
    if (target.shared) {
      target.resources = resourcesOf(target.shared);
      delete target.shared;
    }
    Object.defineProperty(target, 'resource', { value: (key) => context?.find((c) => c.key === key)?.resource });
  }
  return target;
}

/**
 * The resources left by applying `bundles` in order (content sharing, req 111), as the hub's
 * core does (core/src/bundle.rs): an entry with a resource puts it under its type and id; a
 * DELETE removes the resource its fullUrl names, else its request.url. Sorted by type and id,
 * as the hub keeps them, so a snapshot and followed updates list them alike. The core checked
 * versions and order; this only replays its Bundles.
 */
function resourcesOf(bundles) {
  const m = new Map();
  for (const b of bundles) {
    for (const e of b.entry ?? []) {
      if (/^delete$/i.test(e.request?.method)) m.delete(keyOf(e.fullUrl) ?? keyOf(e.request.url));
      else if (e.resource) m.set(e.resource.resourceType + '/' + e.resource.id, e.resource);
    }
  }
  return [...m].sort(([a], [b]) => (a < b ? -1 : 1)).map((e) => e[1]);
}

/** `Type/id` of a URL naming a resource (relative, absolute, or with `/_history/`), as
 *  ResourceKey::from_url reads it; undefined for `urn:` and search URLs. */
function keyOf(url) {
  const u = String(url ?? '').trim();
  const k = u.split('/_history/')[0].replace(/\/+$/, '').split('/').slice(-2).join('/');
  if (!/^urn:|[?#]/.test(u) && /^[A-Z][A-Za-z0-9]*\/[A-Za-z0-9.-]+$/.test(k)) return k;
}
