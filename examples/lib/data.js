// Synthetic patients, imaging studies and reports: invented, no real person. Every app of the
// examples reads the same list, as apps reading one FHIR server would.

const patient = (id, family, given, birthDate, gender, mrn) => ({
  resourceType: 'Patient',
  id,
  identifier: [{ system: 'urn:example:mrn', value: mrn }],
  name: [{ family, given: [given] }],
  birthDate,
  gender,
});

const study = (id, patientId, modality, description, started) => ({
  resourceType: 'ImagingStudy',
  id,
  status: 'available',
  subject: { reference: `Patient/${patientId}` },
  modality: [{ system: 'http://dicom.nema.org/resources/ontology/DCM', code: modality }],
  description,
  started,
});

export const PATIENTS = [
  patient('pat-ada', 'Lovelace', 'Ada', '1965-12-10', 'female', 'MRN-1001'),
  patient('pat-alan', 'Turing', 'Alan', '1952-06-23', 'male', 'MRN-1002'),
  patient('pat-grace', 'Hopper', 'Grace', '1976-12-09', 'female', 'MRN-1003'),
];

export const STUDIES = [
  study('st-ada-ct', 'pat-ada', 'CT', 'CT chest with contrast', '2026-11-20T08:15:00Z'),
  study('st-ada-xr', 'pat-ada', 'DX', 'Chest X-ray, 2 views', '2026-11-02T14:40:00Z'),
  study('st-alan-mr', 'pat-alan', 'MR', 'MRI brain without contrast', '2026-11-21T10:05:00Z'),
  study('st-grace-us', 'pat-grace', 'US', 'Ultrasound abdomen', '2026-11-19T16:30:00Z'),
];

export const studiesOf = (patientId) => STUDIES.filter((s) => s.subject.reference === `Patient/${patientId}`);
export const patientById = (id) => PATIENTS.find((p) => p.id === id);

/** The report of a study (one per study in this worklist). */
export const reportFor = (study) => ({
  resourceType: 'DiagnosticReport',
  id: `rep-${study.id}`,
  status: 'preliminary',
  subject: study.subject,
  imagingStudy: [{ reference: `ImagingStudy/${study.id}` }],
  code: { text: `Report: ${study.description}` },
});

/** "Lovelace, Ada" */
export const displayName = (p) => (p?.name?.[0] ? `${p.name[0].family}, ${p.name[0].given?.join(' ') ?? ''}` : p?.id ?? '');
