// The package in Node (its README promises Node >= 22.3): init() reads the .wasm from disk, a
// client follows the hub over Node's own fetch and WebSocket, and a runtime without WebSocket
// is told what it lacks (issue 15).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startHub, patient, uid } from '../hub/harness.mjs';
import { eventually } from './harness.mjs';

let hub;
before(async () => (hub = await startHub()));
after(async () => hub?.stop());

test('Node: init() loads the package next to it, connect() follows the hub, errors are FhircastErrors', async () => {
  const { default: init, FhircastClient, FhircastError } = await import('../../npm/pkg/index.js');
  await init();
  const topic = (hub.topic = uid('node'));
  const seen = [];
  const client = await FhircastClient.connect({
    hubUrl: hub.base,
    topic,
    subscriberName: 'Node app',
    on: { 'Patient-open': (e) => void seen.push(e.event.context[0].resource.id) },
  });
  const posted = await hub.post(hub.event('Patient-open', [patient('p-node')]));
  assert.equal(posted.status, 202, posted.text);
  await eventually(() => seen.includes('p-node'));
  await eventually(() => client.currentContext()?.anchor === 'Patient/p-node');
  assert.equal(client.status().state, 'in-sync');
  await client.close();

  const error = await FhircastClient.connect({ hubUrl: `${hub.base}/nope/deeper`, topic, events: ['Patient-open'] }).catch((e) => e);
  assert.ok(error instanceof FhircastError, String(error));
  assert.equal(error.code, 'http');
  assert.equal(error.status, 404);
});

test('Node: without a global WebSocket, connect() says what is missing and which Node has it', async () => {
  const { default: init, FhircastClient } = await import('../../npm/pkg/index.js');
  await init();
  const saved = Object.getOwnPropertyDescriptor(globalThis, 'WebSocket');
  Object.defineProperty(globalThis, 'WebSocket', { value: undefined, configurable: true, writable: true });
  try {
    const error = await FhircastClient.connect({ hubUrl: hub.base, topic: uid('t'), events: ['Patient-open'] }).catch((e) => e);
    assert.equal(error.code, 'unsupported-runtime');
    assert.match(error.message, /no global WebSocket/);
    assert.match(error.message, new RegExp(`Node ${process.versions.node.replace(/\./g, '\\.')}: Node 22 or later has one`));
  } finally {
    Object.defineProperty(globalThis, 'WebSocket', saved);
  }
});
