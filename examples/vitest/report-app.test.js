// The report app's sync handling, tested against fhircast-sdk/testing's in-process hub:
// `npx vitest run`. No hub to start, no network: the hub's own state machine runs in-process.
import { afterEach, beforeEach, expect, test, vi } from 'vitest';
import { createTestHub } from 'fhircast-sdk/testing';
import { startReportApp } from './report-app.js';

let hub;
let app;
beforeEach(async () => {
  hub = await createTestHub();
  app = await startReportApp({ hubUrl: hub.url, topic: hub.topic });
});
afterEach(async () => {
  await app.client.close();
  await hub.close();
});

const patient = (id) => ({ patient: { resourceType: 'Patient', id } });

test('follows the patient the EHR opens', async () => {
  await hub.publish('Patient-open', patient('p1'));
  await expect.poll(() => app.patient).toBe('p1');
  expect(app.client.status().state).toBe('in-sync');
});

test('refuses to switch patients while editing, and the other apps are told', async () => {
  const pacs = await hub.app({ name: 'PACS' });
  await hub.publish('Patient-open', patient('p1'));
  await expect.poll(() => app.patient).toBe('p1');

  app.startEditing();
  await hub.publish('Patient-open', patient('p2'));

  // The report stays on p1 and the app says so...
  await expect.poll(() => app.client.status().state).toBe('out-of-sync');
  expect(app.patient).toBe('p1');
  expect(app.client.status().reason?.kind).toBe('refused');
  // ...it answered 409, and the hub sent the PACS a SyncError naming it.
  expect(hub.answersOf('Report app').map((a) => a.status)).toEqual([200, 409]);
  await expect.poll(() => pacs.syncErrors.length).toBe(1);
  expect(hub.syncErrors()[0]).toMatchObject({ subscriber: 'Report app', cause: 'refused' });
});

test('follows again at the next change once the report is done', async () => {
  app.startEditing();
  await hub.publish('Patient-open', patient('p1'));
  await expect.poll(() => app.client.status().state).toBe('out-of-sync');

  app.finishEditing();
  await hub.publish('Patient-open', patient('p2'));
  await expect.poll(() => app.patient).toBe('p2');
  expect(app.client.status().state).toBe('in-sync');
});

test('comes back after the hub restarts, and shows what the hub holds', async () => {
  await hub.publish('Patient-open', patient('p1'));
  await expect.poll(() => app.patient).toBe('p1');
  await hub.restart();
  await expect.poll(() => hub.subscribers().filter((s) => s.connected).length, { timeout: 10_000 }).toBe(1);
  await hub.publish('Patient-open', patient('p2'));
  await expect.poll(() => app.patient).toBe('p2');
  expect(app.client.status().state).toBe('in-sync');
});

test('is told, within the hub\'s 10 s, of an app that never answers (fake timers move the hub\'s clock too)', async () => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
  try {
    await hub.app({ name: 'Silent viewer', answer: 'silent' });
    await hub.publish('Patient-open', patient('p1'));
    await vi.advanceTimersByTimeAsync(10_000);
    expect(hub.syncErrors()).toMatchObject([{ subscriber: 'Silent viewer', cause: 'unresponsive' }]);
    expect(app.client.status()).toMatchObject({ state: 'out-of-sync', reason: { kind: 'sync-error', subscriberName: 'Silent viewer' } });
  } finally {
    vi.useRealTimers();
  }
});
