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
    Object.defineProperty(target, 'resource', { value: (key) => context?.find((c) => c.key === key)?.resource });
  }
  return target;
}
