// A typed usage example of fhircast-sdk, compiled with `tsc --noEmit --strict` by
// tests/sdk/types.test.mjs: it must compile, and each `@ts-expect-error` line must NOT (so the
// declarations stay precise).
import init, { FhircastClient, type FhircastEvent, type SyncStatus, type SyncErrorDetails } from 'fhircast-sdk';

export async function smartApp(tokenResponse: { access_token: string; 'hub.url': string; 'hub.topic': string }) {
  await init();
  const client = await FhircastClient.fromSmartLaunch(tokenResponse, {
    events: ['Patient-open', 'Patient-close', 'SyncError'],
    subscriberName: 'Typed viewer',
  });
  const off = client.on('Patient-open', async (event: FhircastEvent) => {
    const patient = event.event.context.find((c) => c.key === 'patient');
    if (patient && 'resource' in patient) {
      const id: string | undefined = patient.resource.id;
      return id ? 'accept' : 'refuse';
    }
    return 'defer';
  });
  client.onSyncError((d: SyncErrorDetails) => console.warn(`${d.subscriberName} could not follow ${d.eventName}: ${d.diagnostics}`));
  client.onStatusChange((s: SyncStatus) => {
    if (s.state === 'out-of-sync') console.warn(s.reason.kind, s.reason.message);
  });
  const id: string = await client.publish('Patient-open', [{ key: 'patient', resource: { resourceType: 'Patient', id: 'p1' } }]);
  await client.update('DiagnosticReport/r1', { put: [{ resourceType: 'Observation', id: 'o1', status: 'preliminary' }], delete: ['Observation/o0'] });
  await client.select('DiagnosticReport/r1', ['Observation/o1']);
  const current = client.currentContext();
  if (current) console.log(current.anchor, current.versionId ?? 'no version');
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
  return client;
}
