// The report app: content sharing (FHIRcast req 107-121). It opens a DiagnosticReport for a study
// of the current patient (DiagnosticReport-open), adds and removes Observations in it
// (DiagnosticReport-update with a transaction Bundle), selects one (DiagnosticReport-select),
// and shows the report's version. Every window of it on the same session shows the same findings.
import init, { FhircastClient } from 'fhircast-sdk';
import { studiesOf, reportFor, patientById } from '../lib/data.js';
import { launchParameters } from '../lib/launch.js';
import { renderStatus, logLine, describeContext, resourceOf, syncErrorLine } from '../lib/ui.js';

const $ = (id) => document.getElementById(id);
const launch = launchParameters();

/** The selection (DiagnosticReport-select is not content: it is not kept by the hub). */
let selected = new Set();

const isReport = (c) => c?.anchor?.startsWith('DiagnosticReport/');

/** The open report's findings: the SDK keeps the report's shared resources (req 105-117) from
 *  the hub's content and every update followed since, its own included, and reads them again
 *  after a missed update or a reconnect. `resources` is absent while they are being read. */
const findings = (c) =>
  (c?.resources ?? [])
    .filter((r) => r.resourceType === 'Observation')
    // The SDK lists resources by type and id, as the hub keeps them: shown in the order written.
    .sort((a, b) => String(a.issued ?? '').localeCompare(String(b.issued ?? '')));

// Each window its own name, so that the EHR's roster tells two report windows apart: numbered
// per session in the order they opened, and kept across reloads of the same tab.
const windows = `report-windows:${launch['hub.topic']}`;
const tab = `report-window:${launch['hub.topic']}`;
sessionStorage[tab] ??= String((localStorage[windows] = Number(localStorage[windows] ?? 0) + 1));
const name = `Report app ${sessionStorage[tab]}`;
document.title = name;
document.querySelector('h1').textContent = name;

let client;
try {
  await init();
  client = await FhircastClient.fromSmartLaunch(launch, {
    subscriberName: name,
    events: ['Patient-open', 'Patient-close', 'ImagingStudy-open', 'ImagingStudy-close', 'DiagnosticReport-open', 'DiagnosticReport-close', 'DiagnosticReport-update', 'DiagnosticReport-select', 'UserLogout', 'SyncError'],
    on: {
      'DiagnosticReport-update': (e) => {
        logLine($('log'), `Update from another app: version ${e.event['context.versionId']}`);
      },
      'DiagnosticReport-select': (e) => {
        selected = new Set(e.event.context.filter((c) => c.key === 'select').map((c) => c.reference.reference));
        render();
      },
    },
    onStatusChange: (s) => renderStatus($('banner'), s, client?.currentContext()),
    onSyncError: (e) => logLine($('syncerrors'), syncErrorLine(e, name), { className: 'syncerror' }),
    onContextChange: (c) => {
      if (client) renderStatus($('banner'), client.status(), c);
      if (!isReport(c)) selected = new Set();
      render();
    },
  });
} catch (e) {
  $('banner').textContent = `Cannot follow the session: ${e.message}`;
  $('banner').dataset.state = 'error';
  throw e;
}
renderStatus($('banner'), client.status(), client.currentContext());
addEventListener('pagehide', () => client.close());
window.client = client;

function render() {
  const current = client?.currentContext();
  $('context').textContent = describeContext(current);
  $('choose').hidden = isReport(current);
  $('editor').hidden = !isReport(current);
  // Reports of the current patient's studies.
  const patient = resourceOf(current?.context, 'patient');
  const list = $('reports');
  list.replaceChildren();
  for (const s of patient ? studiesOf(patient.id) : []) {
    const b = Object.assign(document.createElement('button'), { textContent: `Open report: ${s.description}` });
    b.dataset.study = s.id;
    b.onclick = () => openReport(s);
    list.append(b);
  }
  if (!patient) list.innerHTML = '<p class="empty">Open a patient in the EHR.</p>';
  if (!isReport(current)) return;
  $('title').textContent = resourceOf(current.context, 'report')?.code?.text ?? current.anchor;
  $('version').textContent = current.versionId ?? '—';
  const ul = $('observations');
  ul.replaceChildren();
  if (!current.resources) {
    ul.innerHTML = '<li class="empty">Reading the report…</li>';
    return;
  }
  const observations = findings(current);
  for (const o of observations) {
    const li = document.createElement('li');
    li.dataset.id = o.id;
    li.classList.toggle('selected', selected.has(`Observation/${o.id}`));
    const text = Object.assign(document.createElement('button'), { textContent: o.valueString, className: 'link', title: 'select' });
    text.onclick = () => selectObservation(o.id);
    const remove = Object.assign(document.createElement('button'), { textContent: 'Remove', className: 'remove' });
    remove.onclick = () => change({ delete: [`Observation/${o.id}`] }, `removed ${o.valueString}`);
    li.append(text, ' ', remove);
    ul.append(li);
  }
  if (!observations.length) ul.innerHTML = '<li class="empty">No findings yet.</li>';
}

async function openReport(study) {
  const patient = patientById(study.subject.reference.split('/')[1]);
  try {
    await client.publish('DiagnosticReport-open', [
      { key: 'report', resource: reportFor(study) },
      { key: 'patient', resource: patient },
      { key: 'study', resource: study },
    ]);
    logLine($('log'), `Opened the report of ${study.description}`);
  } catch (e) {
    logLine($('log'), `DiagnosticReport-open failed: ${e.message}`, { className: 'syncerror' });
  }
}

/** Shares a change of the report's content: a DiagnosticReport-update (req 116-117). */
async function change(changes, what) {
  try {
    await client.update(client.currentContext().anchor, changes); // resolves once echoed, applied
    render();
    logLine($('log'), `${what}: now version ${client.currentContext()?.versionId}`);
  } catch (e) {
    logLine($('log'), `DiagnosticReport-update failed: ${e.message}`, { className: 'syncerror' });
  }
}

async function selectObservation(id) {
  const anchor = client.currentContext().anchor;
  const refs = selected.has(`Observation/${id}`) ? [] : [`Observation/${id}`]; // click again: clear
  try {
    await client.select(anchor, refs);
    selected = new Set(refs);
    render();
  } catch (e) {
    logLine($('log'), `DiagnosticReport-select failed: ${e.message}`, { className: 'syncerror' });
  }
}

$('add').onsubmit = (ev) => {
  ev.preventDefault();
  const text = $('finding').value.trim();
  if (!text) return;
  const obs = { resourceType: 'Observation', id: crypto.randomUUID(), status: 'preliminary', code: { text: 'Finding' }, issued: new Date().toISOString(), valueString: text };
  $('finding').value = '';
  change({ put: [obs] }, `added "${text}"`);
};

$('close-report').onclick = async () => {
  const c = client.currentContext();
  try {
    await client.publish('DiagnosticReport-close', c.context);
  } catch (e) {
    logLine($('log'), `DiagnosticReport-close failed: ${e.message}`, { className: 'syncerror' });
  }
};

render();
