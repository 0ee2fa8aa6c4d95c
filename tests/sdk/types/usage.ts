// A typed usage example of fhircast-sdk, compiled with `tsc --noEmit --strict` by
// tests/sdk/types.test.mjs: it must compile, and each `@ts-expect-error` line must NOT (so the
// declarations stay precise).
import init, { FhircastClient, FhircastError, type FhircastEvent, type SyncStatus, type SyncErrorDetails } from 'fhircast-sdk';
import wasmUrl from 'fhircast-sdk/wasm';
import { useFhircast, useSyncStatus, type UseFhircast } from 'fhircast-sdk/react';
import { FhircastStatus } from 'fhircast-sdk/status';

export function hooks(): UseFhircast['status']['state'] {
  const { client, context, error } = useFhircast({ hubUrl: 'http://127.0.0.1:8787/api/hub', topic: 't', events: ['Patient-open'] });
  if (error) console.warn(error.code);
  console.log(context?.anchor);
  // @ts-expect-error: useFhircast needs the hub's URL
  useFhircast({ topic: 't' });
  return useSyncStatus(client).state;
}

export function banner(client: FhircastClient): FhircastStatus | null {
  const el = document.querySelector('fhircast-status');
  if (el) el.client = client;
  return el;
}

export async function smartApp(tokenResponse: { access_token: string; 'hub.url': string; 'hub.topic': string }) {
  await init(wasmUrl);
  const client = await FhircastClient.fromSmartLaunch(tokenResponse, {
    events: ['Patient-open', 'Patient-close', 'SyncError'],
    subscriberName: 'Typed viewer',
  });
  const off = client.on('Patient-open', async (event: FhircastEvent) => {
    const patient = event.event.context.find((c) => c.key === 'patient')?.resource;
    if (patient) {
      const id: string | undefined = patient.id;
      return id ? 'accept' : 'refuse';
    }
    return 'defer';
  });
  client.onSyncError((d: SyncErrorDetails) => console.warn(`${d.subscriberName} could not follow ${d.eventName}: ${d.diagnostics}`));
  client.onStatusChange((s: SyncStatus) => {
    if (s.state === 'out-of-sync') console.warn(s.reason.kind, s.reason.message);
  });
  // Destructuring works on every status (issue 15: `reason` was missing on two of them).
  client.onStatusChange(({ state, reason }) => console.log(state, reason?.message));
  const id: string = await client.publish('Patient-open', [{ key: 'patient', resource: { resourceType: 'Patient', id: 'p1' } }]);
  await client.update('DiagnosticReport/r1', { put: [{ resourceType: 'Observation', id: 'o1', status: 'preliminary' }], delete: ['Observation/o0'] });
  await client.select('DiagnosticReport/r1', ['Observation/o1']);
  const current = client.currentContext();
  if (current) console.log(current.anchor, current.versionId ?? 'no version');
  console.log(client.currentContext()?.versionId);
  // Proprietary events are reverse-domain names (req 135); any resource type's events are typed.
  client.on('com.example.scanner-done', () => 'accept');
  client.on('Observation-update', () => true);
  off();
  await client.close();
  return id;
}

export async function iframeApp() {
  await init();
  const client = await FhircastClient.connect({
    hubUrl: 'http://127.0.0.1:8787/api/hub',
    topic: new URLSearchParams(location.search).get('topic') ?? '',
    events: 'Patient-open,Patient-close',
    accessToken: async () => 'token',
    leaseSeconds: 600,
  });

  // @ts-expect-error: a handler's answer is accept/refuse/defer/fail or a boolean, not a number
  client.on('Patient-open', () => 42);
  // @ts-expect-error: 'in_sync' is not a status
  if (client.status().state === 'in_sync') console.log('never');
  // @ts-expect-error: context entries need a key
  await client.publish('Patient-close', [{ resource: { resourceType: 'Patient', id: 'p1' } }]);
  // @ts-expect-error: hubUrl is required
  await FhircastClient.connect({ topic: 't' });
  // @ts-expect-error: a misspelt event name (issue 15: any string was accepted)
  client.on('Patient-opn', () => true);
  // @ts-expect-error: not a FHIR resource type
  await client.publish('Patinet-open', []);
  await FhircastClient.connect({
    hubUrl: 'http://127.0.0.1:8787/api/hub',
    topic: 't',
    // @ts-expect-error: a misspelt key in `on` (connect() refuses it at run time too)
    on: { 'Patient-opne': () => true },
  });
  try {
    await client.close();
  } catch (e) {
    if (e instanceof FhircastError) {
      const code: 'option' | 'argument' | 'http' | 'network' | 'denied' | 'closed-early' | 'token' | 'closed' | 'not-initialized' | 'unsupported-runtime' = e.code;
      console.log(code, e.status ?? 'no status');
    }
  }
  return client;
}
