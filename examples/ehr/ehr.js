// The EHR simulator: the driving application. Opening a patient or a study publishes
// Patient-open / ImagingStudy-open; several contexts can be open at once (tabs), one is current;
// closing a tab publishes its -close. It follows what other apps open too, shows every
// subscriber's state (from the hub's roster) and every SyncError, and hosts an app in an iframe.
import init, { FhircastClient } from 'fhircast-sdk';
import { FhircastBridge } from 'fhircast-sdk/bridge';
import { PATIENTS, studiesOf, displayName, patientById } from '../lib/data.js';
import { HUB_URL, topicFromUrl, launchUrl, smartLaunchUrl } from '../lib/launch.js';
import { renderStatus, logLine, describeContext, syncErrorLine, resourceOf } from '../lib/ui.js';

const $ = (id) => document.getElementById(id);
const topic = topicFromUrl();
$('topic').textContent = topic;
// The viewer is launched as a SMART app (EHR launch through fhirclient, the dev authorization
// server's token response carrying hub.url and hub.topic); the report app with both in its URL.
$('launch-viewer').href = smartLaunchUrl('/viewer/launch.html', topic);
$('launch-report').href = launchUrl('/report/', topic);
// The embedded app follows through this page (FhircastBridge, below): its URL carries nothing
// of the hub. `?embed=direct` embeds it the other way, as its own subscriber with the hub URL
// and topic in its URL.
const direct = new URLSearchParams(location.search).get('embed') === 'direct';

/** Open contexts by anchor ("Patient/pat-ada"): the open event's name and context. */
const tabs = new Map();
/** SyncErrors received, to explain a subscriber's refusal in the roster. */
const syncErrors = [];
/** The hub's roster of this topic (read every second, below), or why it could not be read. */
let roster = null;
let rosterError = null;

const anchorOf = (name, context) => {
  const type = name.split('-')[0];
  const r = context.find((c) => c.resource?.resourceType === type)?.resource;
  return r && `${type}/${r.id}`;
};

/** Keeps the tabs in step with an event: an open adds one, a close removes it, a logout clears all. */
function track(name, context) {
  if (name === 'UserLogout') tabs.clear();
  else if (name.endsWith('-open')) tabs.set(anchorOf(name, context), { name, context });
  else if (name.endsWith('-close')) tabs.delete(anchorOf(name, context));
  renderTabs();
}

let client;
try {
  await init(); // loads the SDK's WebAssembly module, once
  if (direct) {
    $('embedded').src = launchUrl('/embedded/', topic);
  } else {
    // Apps from this origin may follow through this page; the hub sees each under its own name.
    const bridge = new FhircastBridge({ hubUrl: HUB_URL, topic, allowedOrigins: [location.origin] }).start();
    addEventListener('pagehide', () => bridge.close());
    $('embedded').src = '/embedded/';
  }
  client = await FhircastClient.connect({
  hubUrl: HUB_URL,
  topic,
  subscriberName: 'EHR',
  events: ['Patient-open', 'Patient-close', 'ImagingStudy-open', 'ImagingStudy-close', 'DiagnosticReport-open', 'DiagnosticReport-close', 'UserLogout', 'SyncError'],
  // What other apps open or close shows up as tabs here too.
  on: { '*': (e) => track(e.event['hub.event'], e.event.context) },
  onStatusChange: () => renderBanner(),
  onContextChange: () => {
    renderTabs();
    renderBanner();
  },
  onSyncError: (e) => {
    syncErrors.push(e);
    $('syncerrors').querySelector('.empty')?.remove();
    logLine($('syncerrors'), syncErrorLine(e, 'EHR'), { className: 'syncerror' });
    renderRoster();
  },
  });
} catch (e) {
  $('banner').textContent = `Cannot start the session: ${e.message}`;
  $('banner').dataset.state = 'error';
  throw e;
}
renderBanner();
window.client = client; // for the browser's console

/**
 * The EHR's banner: its own sync status, and while it is in sync, the apps that have not
 * answered the last change yet (from the roster): "in sync" must not suggest that every app
 * already shows what the EHR shows.
 */
function renderBanner() {
  if (!client) return;
  const status = client.status();
  renderStatus($('banner'), status, client.currentContext());
  const waiting = (roster?.subscribers ?? [])
    .filter((s) => s.name !== 'EHR')
    .map((s) => [s.name, stateOf(s)])
    .filter(([, state]) => /^(awaiting its answer to|deciding about) /.test(state));
  if (status.state === 'in-sync' && waiting.length) {
    const who = waiting.map(([name, state]) => `${name} (${state.replace(/^awaiting its answer to|^deciding about/, '').trim()})`);
    $('banner').textContent += ` · waiting for ${who.join(', ')}`;
  }
}

/** Publishes an event and records what happened. */
async function send(name, context) {
  try {
    await client.publish(name, context); // resolves once the hub accepted it and echoed it
    track(name, context);
    logLine($('log'), [name, describeContext({ context })].filter(Boolean).join(' '));
  } catch (e) {
    logLine($('log'), `${name} failed: ${e.message}`, { className: 'syncerror' });
  }
}

const openPatient = (p) => send('Patient-open', [{ key: 'patient', resource: p }]);
const openStudy = (s) =>
  send('ImagingStudy-open', [
    { key: 'study', resource: s },
    { key: 'patient', resource: patientById(s.subject.reference.split('/')[1]) },
  ]);

// The worklist: a row per patient, a button per study.
for (const p of PATIENTS) {
  const row = $('worklist').tBodies[0].insertRow();
  const open = Object.assign(document.createElement('button'), { textContent: displayName(p), className: 'link' });
  open.dataset.open = `Patient/${p.id}`;
  open.onclick = () => openPatient(p);
  row.insertCell().append(open);
  row.insertCell().textContent = p.identifier[0].value;
  const cell = row.insertCell();
  for (const s of studiesOf(p.id)) {
    const b = Object.assign(document.createElement('button'), { textContent: s.description, className: 'study' });
    b.dataset.open = `ImagingStudy/${s.id}`;
    b.onclick = () => openStudy(s);
    cell.append(b);
  }
}

/** The tabs: every open context; the current one marked; × closes. */
/** The patient an open context belongs to ("Patient/pat-ada"), or its own anchor. */
function patientOf(anchor, context) {
  const p = context.find((c) => c.key === 'patient')?.resource;
  return p?.id ? `Patient/${p.id}` : anchor;
}

/** An open context inside its patient's tab: "chart", the study, or the report. */
function itemLabel(anchor, context) {
  switch (anchor.split('/')[0]) {
    case 'Patient':
      return 'chart';
    case 'ImagingStudy':
      return resourceOf(context, 'study')?.description ?? anchor;
    case 'DiagnosticReport':
      return `report${resourceOf(context, 'study')?.description ? ` · ${resourceOf(context, 'study').description}` : ''}`;
    default:
      return anchor;
  }
}

/**
 * One tab per patient: the patient's open contexts (the patient, a study, a report) are items
 * inside it, not tabs of their own, so one patient does not pile up as three tabs. Each item can
 * be made current again (its open re-sent) or closed on its own; × on the patient's row closes
 * its contexts, most specific first (req 122-125).
 */
function renderTabs() {
  const current = client?.currentContext()?.anchor;
  const ul = $('tabs');
  ul.replaceChildren();
  if (tabs.size === 0) ul.innerHTML = '<li class="empty">Nothing open: pick a patient or a study.</li>';
  const groups = new Map();
  for (const [anchor, tab] of tabs) {
    const key = patientOf(anchor, tab.context);
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push([anchor, tab]);
  }
  for (const [patient, items] of groups) {
    const group = document.createElement('li');
    group.className = 'patient';
    group.dataset.patient = patient;
    group.classList.toggle('current', items.some(([a]) => a === current));
    const p = items.map(([, t]) => resourceOf(t.context, 'patient')).find(Boolean);
    const head = Object.assign(document.createElement('span'), { className: 'who', textContent: p ? displayName(p) : patient });
    const closeAll = Object.assign(document.createElement('button'), { textContent: '×', title: `close everything open for ${head.textContent}`, className: 'close-all' });
    // Most specific first: a report before its study before the patient.
    // One at a time: the hub refuses to close a patient while its study is still current.
    closeAll.onclick = async () => {
      for (const [, t] of [...items].reverse()) await send(t.name.replace(/-open$/, '-close'), t.context);
    };
    const list = Object.assign(document.createElement('ul'), { className: 'items' });
    for (const [anchor, { name, context }] of items) {
      const li = document.createElement('li');
      li.dataset.anchor = anchor;
      li.classList.toggle('current', anchor === current);
      const what = itemLabel(anchor, context);
      // Clicking an item makes it current again: the same open event, re-sent.
      const label = Object.assign(document.createElement('button'), { textContent: what, className: 'tab', title: describeContext({ context }) || anchor });
      label.onclick = () => send(name, context);
      const close = Object.assign(document.createElement('button'), { textContent: '×', title: `close ${anchor}`, className: 'close' });
      close.onclick = () => send(name.replace(/-open$/, '-close'), context);
      li.append(label, close);
      list.append(li);
    }
    group.append(head, closeAll, list);
    ul.append(group);
  }
}

$('logout').onclick = () =>
  send('UserLogout', [
    {
      key: 'parameters',
      resource: {
        resourceType: 'Parameters',
        parameter: [{ name: 'code', valueCoding: { system: 'http://fhircast.hl7.org/CodeSystem/fhircast-codesystem', code: 'user-initiated' } }],
      },
    },
  ]);

// Every subscriber's state: the hub's roster of this topic (GET {hub}/{topic}/subscribers),
// read every second. The hub knows who is connected and what each one last answered.
async function pollRoster() {
  try {
    const r = await fetch(`${HUB_URL}/${encodeURIComponent(topic)}/subscribers`);
    if (!r.ok) throw new Error(`${r.status} ${await r.text()}`);
    roster = await r.json();
    rosterError = null;
  } catch (e) {
    rosterError = e.message;
  }
  renderRoster();
  renderBanner();
}

const ANSWERS = { 200: 'followed', 202: 'deciding about', 409: 'refused', 500: 'failed on' };

function stateOf(s) {
  if (s.awaiting.length) return `awaiting its answer to ${s.awaiting[0].event}`;
  const a = s.lastAnswer;
  if (!a) return s.connected ? 'listening' : 'connecting';
  if (a.event.toLowerCase() === 'syncerror') {
    // The echo of the app's own SyncError (every event reaches its sender too): its refusal.
    const own = syncErrors.find((e) => e.id === a.id && e.subscriberName === s.name);
    if (own) return `refused ${own.eventName} after asking`;
    // Another app's SyncError is news, not a context to follow: say the app has been told.
    return a.status === 200 ? 'told of the SyncError' : `answered ${a.status} to the SyncError`;
  }
  // A 202 followed by a SyncError from that app is a refusal after asking the user (req 75).
  const refusal = syncErrors.find((e) => e.eventId === a.id && e.subscriberName === s.name);
  if (a.status === 202 && refusal) return `refused ${a.event} after asking`;
  return `${ANSWERS[a.status] ?? `answered ${a.status} to`} ${a.event}`;
}

function renderRoster() {
  const body = $('subscribers').tBodies[0];
  body.replaceChildren();
  if (rosterError) {
    body.insertRow().insertCell().textContent = `the hub cannot be reached: ${rosterError}`;
    return;
  }
  for (const s of roster?.subscribers ?? []) {
    const row = body.insertRow();
    row.dataset.name = s.name;
    row.insertCell().textContent = s.name;
    row.insertCell().textContent = s.connected ? 'connected' : 'not connected';
    const state = row.insertCell();
    state.textContent = stateOf(s);
    state.className = /refused|failed/.test(state.textContent) ? 'bad' : '';
  }
}

pollRoster();
setInterval(pollRoster, 1000);
renderTabs();
