// A dictation app's FhircastClient logic, kept apart from its UI so that it can be tested:
// it follows the patient the EHR opens, except while the radiologist is editing a report,
// when following would put the report under another patient. Then it refuses (409): the hub
// tells the other apps with a SyncError, and this app says it is out of sync.
import init, { FhircastClient } from 'fhircast-sdk';

/** @param {{ hubUrl: string, topic: string, accessToken?: string }} options */
export async function startReportApp({ hubUrl, topic, accessToken }) {
  await init();
  const state = { patient: /** @type {string | null} */ (null), editing: false };
  const client = await FhircastClient.connect({
    hubUrl,
    topic,
    accessToken,
    subscriberName: 'Report app',
    events: ['Patient-open', 'Patient-close', 'SyncError'],
    on: {
      'Patient-open': () => (state.editing ? 'refuse' : undefined),
      'Patient-close': () => (state.editing ? 'refuse' : undefined),
    },
    onContextChange: (context) => {
      state.patient = context?.resource('patient')?.id ?? null;
    },
  });
  return {
    client,
    /** The patient the report is about: what the app shows. */
    get patient() {
      return state.patient;
    },
    startEditing() {
      state.editing = true;
    },
    finishEditing() {
      state.editing = false;
    },
  };
}
