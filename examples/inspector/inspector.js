// The hub inspector (issue 17): for an integrator whose app "does not follow". It polls two of
// this hub's read-only extensions — the roster (GET {hub}/{topic}/subscribers) and the timeline
// (GET {hub}/{topic}/timeline?since=…) — and shows who is subscribed now, every protocol fact
// as it happens (refusals, SyncErrors, slow and missing answers highlighted) and each app's
// answers over time. Works against any deployment: give its hub URL and a token that may read
// SyncError for the topic (the roster's rule). The token stays in this tab (sessionStorage).
//
// URL parameters: ?hub=…&topic=… fill the form and start watching; &slow=ms (default 1000)
// sets when an answer counts as slow; &every=ms (default 1000) the polling period.

const params = new URLSearchParams(location.search);
const SLOW_MS = Number(params.get('slow')) || 1000;
const EVERY_MS = Number(params.get('every')) || 1000;
const $ = (id) => document.getElementById(id);

$('hub').value = params.get('hub') || `${location.origin}/api/hub`;
$('topic').value = params.get('topic') || '';
$('token').value = sessionStorage.getItem('fhircast-inspector-token') || '';
$('slow-ms').textContent = String(SLOW_MS);

let watch = null;

$('watch').addEventListener('submit', (e) => {
  e.preventDefault();
  sessionStorage.setItem('fhircast-inspector-token', $('token').value);
  const url = new URL(location.href);
  url.searchParams.set('hub', $('hub').value.trim());
  url.searchParams.set('topic', $('topic').value.trim());
  history.replaceState(null, '', url);
  start($('hub').value.trim().replace(/\/+$/, ''), $('topic').value.trim(), $('token').value.trim());
});

if (params.get('topic')) start($('hub').value.replace(/\/+$/, ''), $('topic').value, $('token').value);

/** Starts watching a topic (stopping any earlier watch). */
function start(hub, topic, token) {
  if (watch) watch.stopped = true;
  const w = (watch = { hub, topic, token, next: 0, facts: [], stopped: false });
  $('timeline').replaceChildren(item('empty', 'nothing recorded yet'));
  $('lanes').replaceChildren(Object.assign(document.createElement('p'), { className: 'empty', textContent: 'nothing yet' }));
  const tick = async () => {
    if (w.stopped) return;
    try {
      await poll(w);
    } catch (e) {
      setState(`cannot reach ${hub}: ${e.message}`, true);
    }
    if (!w.stopped) setTimeout(tick, EVERY_MS);
  };
  tick();
}

async function get(w, path) {
  const res = await fetch(`${w.hub}/${encodeURIComponent(w.topic)}${path}`, {
    headers: w.token ? { authorization: `Bearer ${w.token}` } : {},
  });
  const body = await res.json().catch(() => null);
  if (!res.ok) {
    const why = body?.issue?.[0]?.diagnostics ?? res.statusText;
    const hint = res.status === 401 ? ' — give an access token' : res.status === 403 ? ' — the token needs fhircast/SyncError.read for this topic' : '';
    throw new Error(`${res.status} ${why}${hint}`);
  }
  return body;
}

async function poll(w) {
  const [roster, page] = await Promise.all([get(w, '/subscribers'), get(w, `/timeline?since=${w.next}`)]);
  if (w.stopped) return;
  renderRoster(roster);
  if (page.facts.length) {
    if (w.facts.length === 0) $('timeline').replaceChildren();
    w.facts.push(...page.facts);
    // Newest first: prepend in order.
    for (const f of page.facts) $('timeline').prepend(renderFact(f));
    renderLanes(w.facts);
  }
  w.next = page.next;
  $('count').textContent = `${w.facts.length} facts`;
  setState(`watching ${w.topic} · updated ${new Date().toLocaleTimeString()}`);
}

function setState(text, bad = false) {
  $('state').textContent = text;
  $('state').classList.toggle('bad', bad);
}

function item(className, text) {
  const li = document.createElement('li');
  li.className = className;
  li.textContent = text;
  return li;
}

function renderRoster(roster) {
  const rows = roster.subscribers.map((s) => {
    const tr = document.createElement('tr');
    const last = s.lastAnswer ? `${s.lastAnswer.status} to ${s.lastAnswer.event}` : '–';
    const awaiting = s.awaiting.length ? s.awaiting.map((a) => a.event).join(', ') : '–';
    for (const [text, cls] of [
      [s.name],
      [s.events.join(', ')],
      [s.connected ? 'connected' : 'not connected', s.connected ? '' : 'late'],
      [awaiting, s.awaiting.length ? 'late' : ''],
      [last, s.lastAnswer && s.lastAnswer.status >= 400 ? 'bad' : ''],
    ]) {
      const td = document.createElement('td');
      td.textContent = text;
      if (cls) td.className = cls;
      tr.append(td);
    }
    tr.dataset.app = s.name;
    return tr;
  });
  const body = $('roster').tBodies[0];
  if (rows.length) body.replaceChildren(...rows);
  else body.replaceChildren(Object.assign(document.createElement('tr'), { innerHTML: '<td colspan="5" class="empty">nobody subscribed</td>' }));
}

/** One timeline entry: time, kind, and a sentence; classed for what to notice. */
function renderFact(f) {
  const li = document.createElement('li');
  li.dataset.fact = f.fact;
  li.dataset.seq = String(f.seq);
  const [kind, text, cls] = describe(f);
  if (cls) li.className = cls;
  const time = document.createElement('time');
  time.dateTime = f.at;
  time.textContent = new Date(f.at).toLocaleTimeString(undefined, { hour12: false }) + `.${f.at.slice(20, 23)}`;
  const k = Object.assign(document.createElement('span'), { className: 'kind', textContent: kind });
  const t = Object.assign(document.createElement('span'), { textContent: text });
  li.append(time, k, t);
  return li;
}

const who = (by) => (by ? ` (${[by.subject, by.client].filter(Boolean).join(' via ')})` : '');

function describe(f) {
  switch (f.fact) {
    case 'subscribed':
      return [f.renewed ? 'renewed' : 'subscribed', `${f.subscriber} to ${f.events.join(', ')} for ${f.leaseSeconds} s${who(f.by)}`];
    case 'subscribeRefused':
      return ['refused', `a subscription: ${f.status} ${f.reason}${who(f.by)}`, 'refused'];
    case 'connected':
      return ['connected', `${f.subscriber}'s WebSocket`];
    case 'unsubscribed':
      return ['unsubscribed', `${f.subscriber}: ${f.reason}${who(f.by)}`, f.reason.startsWith('unresponsive') ? 'timeout' : ''];
    case 'closed':
      return ['closed', `${f.subscriber}'s WebSocket, code ${f.code}`, f.code === 1000 || f.code === 1001 ? '' : 'refused'];
    case 'event':
      return ['event', `${f.event} ${f.anchor ?? ''} (id ${f.id}${f.versionId ? `, version ${f.versionId}` : ''})${f.duplicate ? ' — a retry, not sent again' : ''}${who(f.by)}`];
    case 'eventRefused':
      return ['refused', `${f.event} (id ${f.id}): ${f.status} ${f.reason}${who(f.by)}`, 'refused'];
    case 'notified':
      return ['sent', `${f.event} ${f.id} to ${f.to.join(', ')}${f.derivedFrom ? ` (derived from ${f.derivedFrom})` : ''}`];
    case 'answered': {
      const slow = f.latencyMs > SLOW_MS;
      const cls = f.status >= 400 ? 'refused' : slow ? 'slow' : '';
      return ['answer', `${f.subscriber}: ${f.status} to ${f.event} ${f.id} after ${f.latencyMs} ms${slow ? ' (slow)' : ''}`, cls];
    }
    case 'timedOut':
      return ['no answer', `${f.subscriber} did not answer ${f.event} ${f.id}`, 'timeout'];
    case 'syncError':
      return ['SyncError', `${f.subscriber} did not follow ${f.aboutEvent} ${f.aboutId}${f.diagnostics ? `: ${f.diagnostics}` : ' (sent by the app)'} [${f.cause}]`, 'syncerror'];
    default:
      return [f.fact, JSON.stringify(f)];
  }
}

/** Each app's answers, timeouts, closes and SyncErrors, oldest first. */
function renderLanes(facts) {
  const lanes = new Map();
  const mark = (app, text, cls, title) => {
    if (!lanes.has(app)) lanes.set(app, []);
    lanes.get(app).push({ text, cls, title });
  };
  for (const f of facts) {
    if (f.fact === 'answered') {
      const cls = f.status >= 400 ? 'bad' : f.status === 202 ? 'deciding' : 'ok';
      mark(f.subscriber, String(f.status), `${cls}${f.latencyMs > SLOW_MS ? ' slow' : ''}`, `${f.event} ${f.id}, ${f.latencyMs} ms`);
    } else if (f.fact === 'timedOut') mark(f.subscriber, 'timeout', 'timeout', `${f.event} ${f.id}`);
    else if (f.fact === 'syncError') mark(f.subscriber, 'SyncError', 'syncerror', `${f.aboutEvent} ${f.aboutId}`);
    else if (f.fact === 'closed') mark(f.subscriber, `closed ${f.code}`, f.code === 1000 || f.code === 1001 ? '' : 'bad', '');
    else if (f.fact === 'subscribed' && !f.renewed) mark(f.subscriber, 'joined', '', f.events.join(', '));
  }
  const rows = [...lanes].map(([app, marks]) => {
    const div = Object.assign(document.createElement('div'), { className: 'lane' });
    div.dataset.app = app;
    div.append(Object.assign(document.createElement('strong'), { textContent: app }));
    for (const m of marks) div.append(Object.assign(document.createElement('span'), { className: `mark ${m.cls}`.trim(), textContent: m.text, title: m.title }));
    return div;
  });
  if (rows.length) $('lanes').replaceChildren(...rows);
}
