// Negative cases (requirements §4, neg 1-27) against the hub running in workerd: each refusal
// has the exact status and a precise, developer-facing body — plain text for subscription
// requests, a FHIR OperationOutcome (application/fhir+json) for event requests and
// get-current-context (§5a-5) — and the hub keeps serving afterwards. No bad input gets a 5xx.
//
// neg 9 (tokens, scopes) and the token sides of neg 4, 5 and 13 are in auth.test.mjs; neg 18's
// body-size limit and neg 26 in full are in http.test.mjs.
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import WebSocket from 'ws';
import { startHub, Subscriber, patient, report, reportRef, bundle, observationPut, uid, form, syncErrorDetails } from './harness.mjs';

let hub;
/** Every HTTP answer of this file: { status, what }. */
const seen = [];

before(async () => {
  hub = await startHub({ bindings: { ACK_TIMEOUT_SECONDS: '2', MAX_BUNDLE_ENTRIES: '5' } });
  const request = hub.request.bind(hub);
  hub.request = async (path, init = {}) => {
    const r = await request(path, init);
    seen.push({ status: r.status, what: `${init.method ?? 'GET'} ${path} ${String(init.body ?? '').slice(0, 80)}` });
    assert.ok(r.status < 500, `never a 5xx for bad input: ${r.status} ${r.text}`);
    return r;
  };
});
after(async () => hub?.stop());

// The hub keeps serving after every test: the configuration document and a subscription.
afterEach(async () => {
  const wk = await hub.request('/.well-known/fhircast-configuration');
  assert.equal(wk.status, 200);
  const s = await hub.subscribe({ topic: uid(), events: 'Patient-open' });
  assert.equal(s.status, 202, s.text);
});

/** A plain-text refusal of a subscription request (req 39, 52). */
function refusedText(r, status, ...patterns) {
  assert.equal(r.status, status, r.text);
  assert.match(r.headers.get('content-type'), /^text\/plain/, `plain text: ${r.text}`);
  assert.ok(r.text.length > 20, `a developer-facing description: ${r.text}`);
  for (const p of patterns) assert.match(r.text, p);
}

/** An OperationOutcome refusal of an event request or get-current-context (§5a-5). */
function refusedOutcome(r, status, code, ...patterns) {
  assert.equal(r.status, status, r.text);
  assert.match(r.headers.get('content-type'), /^application\/fhir\+json/, r.text);
  assert.equal(r.json?.resourceType, 'OperationOutcome', r.text);
  const [issue] = r.json.issue;
  assert.equal(issue.severity, 'error');
  assert.equal(issue.code, code);
  assert.ok(issue.diagnostics.length > 20, issue.diagnostics);
  for (const p of patterns) assert.match(issue.diagnostics, p);
}

/**
 * The Close frame the hub sent on a subscriber's socket: { code, reason }. Read from the `ws`
 * client as soon as the frame arrives: when a hibernatable socket is closed outside a WebSocket
 * handler (unsubscribe, lease expiry, unresponsiveness), workerd under Miniflare sends the Close
 * frame at once but keeps the TCP connection for ~10 s, so the client's 'close' event is late.
 */
async function closeFrame(s, timeout = 5000) {
  const until = Date.now() + timeout;
  while (!s.ws._closeFrameReceived) {
    if (Date.now() > until) throw new Error('no Close frame');
    await new Promise((r) => setTimeout(r, 10));
  }
  return { code: s.ws._closeCode, reason: s.ws._closeMessage?.toString() };
}

const sub = (topic, extra = {}) => ({ 'hub.channel.type': 'websocket', 'hub.mode': 'subscribe', 'hub.topic': topic, 'hub.events': 'Patient-open', ...extra });

/** Posts an event to both event URLs: POST {hub.url} and POST {hub.url}/{topic}. */
async function postBoth(body, topic = hub.topic) {
  return [await hub.post(body), await hub.post(body, { path: `/${encodeURIComponent(topic)}` })];
}

/** Opens a WebSocket; resolves with the refusal ({ status, text }) or the open socket. */
function upgrade(url) {
  return new Promise((resolve) => {
    const ws = new WebSocket(url);
    ws.on('error', () => {});
    ws.once('open', () => resolve({ status: 101, ws }));
    ws.once('unexpected-response', (_req, res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode, text }));
    });
  });
}

test('neg1: a subscription body that is not a form is refused with 415 naming both content types', async () => {
  const body = form(sub(hub.topic));
  for (const headers of [{ 'content-type': 'text/plain' }, {}, { 'content-type': 'multipart/form-data; boundary=x' }, { 'content-type': 'application/xml' }]) {
    const r = await hub.request('', { method: 'POST', headers, body });
    refusedText(r, 415, /application\/x-www-form-urlencoded/, /application\/(fhir\+)?json/, /neg 1/);
  }
  // The form's parameters (charset) do not matter.
  const ok = await hub.request('', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded; charset=UTF-8' }, body });
  assert.equal(ok.status, 202, ok.text);
});

test('neg1 §5a-5: anything but JSON to POST {hub.url}/{topic} (an event URL) is refused with 415 as an OperationOutcome', async () => {
  for (const ct of ['application/x-www-form-urlencoded', 'text/plain']) {
    const r = await hub.post(form(sub(hub.topic)), { path: `/${hub.topic}`, contentType: ct });
    refusedOutcome(r, 415, 'not-supported', /events are JSON/, /application\/fhir\+json/);
  }
});

test('neg1: an event sent as a form (curl -d without a content type) is told to send JSON, not that hub.channel.type is missing', async () => {
  const event = JSON.stringify({ timestamp: new Date().toISOString(), id: uid(), event: { 'hub.topic': hub.topic, 'hub.event': 'Patient-open', context: [] } });
  for (const path of ['', `/${hub.topic}`]) {
    const r = await hub.request(path, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: event });
    refusedOutcome(r, 415, 'not-supported', /this body is JSON/, /curl -d/, /Content-Type: application\/json/);
    assert.doesNotMatch(r.text, /hub\.channel\.type/);
  }
});

test('neg1 (lenient): subscription parameters sent as JSON are accepted; JSON of the wrong shape is refused naming the field', async () => {
  const topic = uid();
  const r = await hub.post({ 'hub.channel.type': 'websocket', 'hub.mode': 'subscribe', 'hub.topic': topic, 'hub.events': ['patient-OPEN', 'Patient-Close'], 'hub.lease_seconds': 60 }, { contentType: 'application/json' });
  assert.equal(r.status, 202, r.text);
  assert.match(r.headers.get('content-type'), /^application\/json/);
  const s = await Subscriber.connect(r.json['hub.channel.endpoint']);
  const confirmation = await s.next();
  assert.deepEqual(confirmation, { 'hub.mode': 'subscribe', 'hub.topic': topic, 'hub.events': 'Patient-open,Patient-close', 'hub.lease_seconds': 60 });
  s.ws.close();
  const bad = await hub.post({ 'hub.channel.type': 'websocket', 'hub.mode': 'subscribe', 'hub.topic': topic, 'hub.events': 5 }, { contentType: 'application/json' });
  refusedText(bad, 400, /hub\.events must be a string or an array of strings/);
  const deep = await hub.post(`{"hub.mode":"subscribe","x":${'['.repeat(2000)}${']'.repeat(2000)}}`, { contentType: 'application/json' });
  // A JSON object with hub.mode is a subscription request however deep its other members nest.
  refusedText(deep, 400, /hub\.channel\.type is missing/);
});

test('neg2 req26 req33: hub.channel.type missing or not websocket is refused with 400 naming the parameter', async () => {
  const t = hub.topic;
  refusedText(await hub.subscribeForm(sub(t, { 'hub.channel.type': undefined })), 400, /hub\.channel\.type is missing/, /websocket/, /neg 2/);
  refusedText(await hub.subscribeForm(sub(t, { 'hub.channel.type': '' })), 400, /hub\.channel\.type is missing/);
  refusedText(await hub.subscribeForm(sub(t, { 'hub.channel.type': 'webhook', 'hub.callback': 'https://app.example/cb', 'hub.secret': 's' })), 400, /"webhook" is not supported/, /websocket/, /neg 2/);
  refusedText(await hub.subscribeForm({ 'hub.mode': 'unsubscribe', 'hub.topic': t, 'hub.channel.endpoint': 'wss://x/y' }), 400, /hub\.channel\.type is missing/);
  // Any case of the one value is accepted.
  assert.equal((await hub.subscribeForm(sub(t, { 'hub.channel.type': 'WebSocket' }))).status, 202);
});

test('neg3 req27: hub.mode missing or not subscribe/unsubscribe is refused with 400', async () => {
  const t = hub.topic;
  refusedText(await hub.subscribeForm(sub(t, { 'hub.mode': undefined })), 400, /hub\.mode is missing/, /subscribe/, /neg 3/);
  refusedText(await hub.subscribeForm(sub(t, { 'hub.mode': 'publish' })), 400, /hub\.mode "publish" is neither "subscribe" nor "unsubscribe"/, /neg 3/);
  refusedText(await hub.subscribeForm(sub(t, { 'hub.mode': 'denied' })), 400, /"denied"/);
});

test('neg4 req28: hub.topic missing, too long or not a URL path segment is refused with 400', async () => {
  refusedText(await hub.subscribeForm(sub(undefined)), 400, /hub\.topic is missing/, /neg 4/);
  for (const [topic, what] of [['a/b', /'\/'/], ['a b', /whitespace/], ['a?b', /'\?'/], ['a#b', /'#'/], ['a\u0001b', /control character/]]) {
    refusedText(await hub.subscribeForm(sub(topic)), 400, /URL path segment/, what, /neg 4/);
  }
  refusedText(await hub.subscribeForm(sub('t'.repeat(300))), 400, /hub\.topic is 300 characters long; at most 256/);
  const long = await postBoth(hub.event('Patient-open', [patient('p1')], { topic: 't'.repeat(300) }), 'x');
  for (const r of long) refusedOutcome(r, 400, 'invalid', /"hub\.topic" is longer than 256 bytes/);
  // The same rule for event requests and URLs: such a topic could never be subscribed to.
  refusedOutcome(await hub.post(hub.event('Patient-open', [patient('p1')], { topic: 'a b' })), 400, 'invalid', /hub\.topic "a b" contains ' '; a topic is one URL path segment/, /neg 4/);
  for (const path of ['/a%20b', '/a%2Fb', '/a%00']) {
    refusedText(await hub.request(path), 404, /not found/);
    refusedText(await hub.request(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' }), 404, /not found/);
  }
});

test('neg5: hub.events missing or empty on subscribe is refused with 400; event names in any case are accepted', async () => {
  const t = uid();
  refusedText(await hub.subscribeForm(sub(t, { 'hub.events': undefined })), 400, /hub\.events is missing or empty/, /Patient-open,Patient-close/, /neg 5/);
  refusedText(await hub.subscribeForm(sub(t, { 'hub.events': ' , ,' })), 400, /hub\.events is missing or empty/);
  refusedText(await hub.subscribeForm(sub(t, { 'hub.events': 'Patient-open,Foo-open' })), 400, /"Foo-open", which is not an event name/, /"Foo" is not a FHIR R4 resource type/);
  refusedText(await hub.subscribeForm(sub(t, { 'hub.events': 'Patient-launch' })), 400, /"launch" is not one of open, close, update, select/);
  // req 34: names are case-insensitive; duplicates collapse (req 29).
  const s = await hub.join('PATIENT-OPEN,patient-open,sYnCeRrOr', { topic: t });
  assert.equal(s.confirmation['hub.events'], 'Patient-open,SyncError');
  const posted = await hub.post(hub.event('pAtIeNt-OpEn', [patient('p1')], { topic: t }));
  assert.equal(posted.status, 202, posted.text);
  const got = await s.nextEvent('Patient-open');
  assert.equal(got.event['hub.event'].toLowerCase(), 'patient-open');
  s.ws.close();
});

test('neg6 req36: a wildcard in hub.events is refused with 400', async () => {
  for (const w of ['*', '*-open', 'Patient-*', 'Patient-open,*']) {
    refusedText(await hub.subscribeForm(sub(hub.topic, { 'hub.events': w })), 400, /wildcard/, /not supported in hub\.events/, /neg 6/);
  }
});

test('neg7: a repeated parameter is refused with 400 naming it', async () => {
  const base = form(sub(hub.topic));
  for (const [extra, name] of [['&hub.topic=other', 'hub.topic'], ['&hub.events=Patient-close', 'hub.events'], ['&hub.mode=subscribe', 'hub.mode'], ['&hub.channel.type=websocket', 'hub.channel.type'], ['&hub.lease_seconds=1&hub.lease_seconds=2', 'hub.lease_seconds']]) {
    const r = await hub.subscribeForm(base + extra);
    refusedText(r, 400, new RegExp(`parameter ${name.replace(/\./g, '\\.')} appears more than once`), /commas/, /neg 7/);
  }
  const json = await hub.post(`{"hub.channel.type":"websocket","hub.mode":"subscribe","hub.topic":"${hub.topic}","hub.events":"Patient-open","hub.topic":"x"}`, { contentType: 'application/json' });
  refusedText(json, 400, /parameter hub\.topic appears more than once/);
});

test('neg8: hub.lease_seconds that is not a positive integer is refused with 400; a long lease is clamped, not refused', async () => {
  for (const lease of ['0', '-5', '1.5', 'abc', '1e3', '99999999999999999999']) {
    refusedText(await hub.subscribe({ events: 'Patient-open', lease }), 400, new RegExp(`hub\\.lease_seconds "${lease.replace(/\./g, '\\.')}" is not a positive whole number`), /neg 8/);
  }
  // An empty value is an absent one (HTML forms send it): the default lease.
  const topic = uid();
  assert.equal((await hub.subscribe({ topic, events: 'Patient-open', lease: '' })).status, 202);
  const s = await hub.join('Patient-open', { topic, lease: 100_000_000 });
  assert.equal(s.confirmation['hub.lease_seconds'], 86_400, 'clamped to MAX_LEASE_SECONDS');
  s.ws.close();
});

test('neg10 req55: unsubscribe without endpoint is 400, with an unknown or used endpoint 404; the spec example\'s trailing %0A is accepted', async () => {
  const topic = uid();
  refusedText(await hub.subscribeForm({ 'hub.channel.type': 'websocket', 'hub.mode': 'unsubscribe', 'hub.topic': topic }), 400, /hub\.channel\.endpoint is missing/, /neg 10/);
  refusedText(await hub.unsubscribe(`ws://127.0.0.1/api/hub/ws/${topic}/${'ab'.repeat(24)}`, { topic }), 404, /does not name an active subscription of this topic/, /neg 10/);
  refusedText(await hub.subscribe({ topic, events: 'Patient-open', endpoint: 'wss://hub.example/nowhere' }), 404, /does not name an active subscription/);
  const s = await hub.join('Patient-open', { topic });
  // Another topic's endpoint is unknown here.
  refusedText(await hub.unsubscribe(s.endpoint, { topic: uid() }), 404, /does not name an active subscription/);
  // req 55: the endpoint value of the spec's example ends in an encoded newline.
  const body = `${form({ 'hub.channel.type': 'websocket', 'hub.mode': 'unsubscribe', 'hub.topic': topic })}&hub.channel.endpoint=${encodeURIComponent(s.endpoint)}%0A`;
  const r = await hub.subscribeForm(body);
  assert.equal(r.status, 202, r.text);
  assert.deepEqual(r.json, { 'hub.channel.endpoint': s.endpoint });
  const denial = await s.next();
  assert.equal(denial['hub.mode'], 'denied');
  assert.equal((await closeFrame(s)).code, 1000);
  refusedText(await hub.unsubscribe(s.endpoint, { topic }), 404, /does not name an active subscription/);
  refusedText(await hub.subscribe({ topic, events: 'Patient-open', endpoint: s.endpoint }), 404, /subscribe without it to get a new endpoint/);
});

test('neg11: a WebSocket to an unknown, used or unsubscribed endpoint is refused (404/403) with the reason', async () => {
  const topic = uid();
  const unknown = await upgrade(`${hub.origin.replace('http', 'ws')}/api/hub/ws/${topic}/${'cd'.repeat(24)}`);
  assert.equal(unknown.status, 404);
  assert.match(unknown.text, /unknown, expired or unsubscribed/);
  const s = await hub.join('Patient-open', { topic });
  const again = await upgrade(s.endpoint);
  assert.equal(again.status, 403);
  assert.match(again.text, /already connected; endpoints are single-use/);
  // The endpoint under another topic's path is unknown there.
  const moved = await upgrade(s.endpoint.replace(topic, uid()));
  assert.equal(moved.status, 404);
  await hub.unsubscribe(s.endpoint, { topic });
  await closeFrame(s);
  assert.equal((await upgrade(s.endpoint)).status, 404);
});

test('neg12: malformed event JSON or a missing envelope field is refused with 400 naming it, on both event URLs', async () => {
  for (const r of await postBoth('{"timestamp":')) refusedOutcome(r, 400, 'invalid', /the event is not valid JSON/, /neg 12/);
  for (const r of await postBoth('[]')) refusedOutcome(r, 400, 'invalid', /not valid JSON/);
  const good = hub.event('Patient-open', [patient('p1')]);
  const cases = [
    [(b) => delete b.timestamp, /the event has no "timestamp"/],
    [(b) => delete b.id, /the event has no "id"/],
    [(b) => delete b.event, /the event has no "event"/],
    [(b) => delete b.event['hub.topic'], /the event has no "hub\.topic"/],
    [(b) => delete b.event['hub.event'], /the event has no "hub\.event"/],
    [(b) => delete b.event.context, /the event has no "event\.context"/],
    [(b) => (b.timestamp = 5), /"timestamp" must be a string/],
    [(b) => (b.id = ''), /"id" must not be empty/],
    [(b) => (b.id = 7), /"id" must be a string/],
    [(b) => (b.event.context = { key: 'patient' }), /"event\.context" must be an array of context entries/],
    // The spec examples' three-digit hour (§5a-23) is refused with the reason.
    [(b) => (b.timestamp = '2023-04-01T010:38:04.16'), /the hour must be two digits/],
  ];
  for (const [mutate, message] of cases) {
    const b = structuredClone(good);
    mutate(b);
    for (const r of await postBoth(b)) refusedOutcome(r, 400, 'invalid', message);
  }
});

test('neg13: an event whose hub.topic is not the URL\'s topic is refused with 403; an unknown event name with 400', async () => {
  const r = await hub.post(hub.event('Patient-open', [patient('p1')]), { path: `/${uid('other')}` });
  refusedOutcome(r, 403, 'forbidden', /hub\.topic ".*" is not the topic "other-.*" this request was sent to/, /neg 13/);
  for (const [name, message] of [['Foo-open', /"Foo" is not a FHIR R4 resource type/], ['Patient-launch', /"launch" is not one of open, close, update, select/], ['Patient open', /not a FHIRcast event name/]]) {
    for (const x of await postBoth(hub.event(name, [patient('p1')]))) refusedOutcome(x, 400, 'invalid', message);
  }
});

test('neg14: missing or unexpected context keys and wrong resource types are refused with 400', async () => {
  const cases = [
    [[], /Patient-open requires a context entry with key "patient"/],
    [[{ key: 'patient', resource: { resourceType: 'Encounter', id: 'e1' } }], /context key "patient" must hold a Patient/],
    [[patient('p1'), { key: 'foo', resource: { resourceType: 'Patient', id: 'x' } }], /does not define the context key "foo"; allowed keys: patient, extension/],
    [[{ key: 'Patient', resource: { resourceType: 'Patient', id: 'p1' } }], /context keys are lower case and case-sensitive/],
    [[{ key: 'patient', reference: { reference: 'Patient/p1' } }], /must be given as "resource", not "reference"/],
    [[{ key: 'patient', resource: { resourceType: 'Patient' } }], /has no "id"/],
    [[{ resource: { resourceType: 'Patient', id: 'p' } }], /key/],
  ];
  for (const [context, message] of cases) {
    for (const r of await postBoth(hub.event('Patient-open', context))) refusedOutcome(r, 400, 'invalid', message);
  }
});

/** A topic with DiagnosticReport/r1 open; returns its versionId. */
async function reportOpen(topic, id = 'r1') {
  const r = await hub.post(hub.event('DiagnosticReport-open', [report(id), patient('p1')], { topic }));
  assert.equal(r.status, 202, r.text);
  return r.json['context.versionId'];
}
const update = (topic, entries, versionId, extra = []) => hub.event('DiagnosticReport-update', [reportRef('r1'), ...(entries ? [bundle(entries)] : []), ...extra], { topic, versionId });

test('neg15: an update with a stale context.versionId is refused with 409 naming the current one; without one with 400', async () => {
  const topic = uid();
  const v1 = await reportOpen(topic);
  const ok = await hub.post(update(topic, [observationPut('o1')], v1));
  assert.equal(ok.status, 202, ok.text);
  const v2 = ok.json['context.versionId'];
  for (const r of await postBoth(update(topic, [observationPut('o2')], v1), topic)) {
    refusedOutcome(r, 409, 'conflict', new RegExp(`context\\.versionId "${v1}" is not the current version "${v2}" of DiagnosticReport/r1`), /neg 15/);
  }
  for (const r of await postBoth(update(topic, [observationPut('o2')], undefined), topic)) refusedOutcome(r, 400, 'invalid', /requires "context\.versionId"/, /neg 15/);
});

test('neg16: an update for an anchor that is not open is refused with 409', async () => {
  const topic = uid();
  for (const r of await postBoth(update(topic, [observationPut('o1')], 'v'), topic)) refusedOutcome(r, 409, 'conflict', /DiagnosticReport\/r1 is not an open context of this topic/, /neg 16/);
  const v = await reportOpen(topic);
  assert.equal((await hub.post(hub.event('DiagnosticReport-close', [report('r1'), patient('p1')], { topic }))).status, 202);
  refusedOutcome(await hub.post(update(topic, [observationPut('o1')], v)), 409, 'conflict', /not an open context/);
});

test('neg17: a bad update Bundle is refused whole with 400, nothing applied', async () => {
  const topic = uid();
  const v = await reportOpen(topic);
  const s = await hub.join('DiagnosticReport-update', { topic });
  const post = { request: { method: 'POST' }, resource: { resourceType: 'Observation', status: 'final' } };
  const cases = [
    [update(topic, null, v, [{ key: 'updates', resource: { resourceType: 'Bundle', type: 'batch', entry: [observationPut('o1')] } }]), /type is "batch"; it must be "transaction"/],
    [update(topic, [observationPut('o1'), post], v), /entry\[1\] is a POST; only PUT and DELETE are allowed/],
    [update(topic, [observationPut('o1'), observationPut('o1')], v), /Observation\/o1 appears in entry\[0\] and entry\[1\]/],
    [update(topic, [{ request: { method: 'DELETE' } }], v), /entry\[0\] is a DELETE with no target/],
    [update(topic, [{ request: { method: 'PUT' } }], v), /entry\[0\] is a PUT without a resource/],
    [update(topic, [observationPut('o1')], v, [bundle([observationPut('o2')])]), /at most 1 context entry with key "updates"/],
    [update(topic, null, v), /requires a context entry with key "updates"/],
    [update(topic, [{ request: { method: 'put' }, resource: { resourceType: 'Observation', id: 'o3' } }], v), /FHIR codes are case-sensitive/],
  ];
  for (const [body, message] of cases) refusedOutcome(await hub.post(body), 400, 'invalid', message);
  const cc = await hub.getContext(topic);
  assert.equal(cc.json['context.versionId'], v, 'the version did not move');
  const content = cc.json.context.find((c) => c.key === 'content').resource;
  assert.deepEqual(content.entry ?? [], [], 'no entry of a refused Bundle was applied');
  assert.ok(await s.nothing(() => true, 300), 'nothing was broadcast');
  s.ws.close();
});

test('neg18: an update Bundle with more entries than MAX_BUNDLE_ENTRIES is refused with 413 too-long', async () => {
  const topic = uid();
  const v = await reportOpen(topic);
  const r = await hub.post(update(topic, [1, 2, 3, 4, 5, 6].map((i) => observationPut(`o${i}`)), v));
  refusedOutcome(r, 413, 'too-long', /the update Bundle has 6 entries, more than the 5 accepted/, /neg 18/);
});

test('neg19: closing a context that is not open (or with ids that match no open one) is refused with 409, nothing broadcast', async () => {
  const topic = uid();
  const s = await hub.join('Patient-close', { topic });
  for (const r of await postBoth(hub.event('Patient-close', [patient('p1')], { topic }), topic)) refusedOutcome(r, 409, 'conflict', /Patient\/p1 is not an open context of this topic/, /neg 19/);
  assert.equal((await hub.post(hub.event('Patient-open', [patient('p1')], { topic }))).status, 202);
  refusedOutcome(await hub.post(hub.event('Patient-close', [patient('p2')], { topic })), 409, 'conflict', /Patient\/p2 is not an open context/);
  assert.ok(await s.nothing(() => true, 300));
  s.ws.close();
});

test('neg20: a select for an anchor that is open but not current is refused with 409', async () => {
  const topic = uid();
  await reportOpen(topic, 'r1');
  await reportOpen(topic, 'r2');
  const select = hub.event('DiagnosticReport-select', [reportRef('r1'), { key: 'select', reference: { reference: 'Observation/o1' } }], { topic });
  for (const r of await postBoth(select, topic)) refusedOutcome(r, 409, 'conflict', /DiagnosticReport\/r1 is not the current context; DiagnosticReport-select is only allowed on the current context/, /neg 20/);
});

test('neg21: a subscriber answering 409 makes the hub send a SyncError naming it to the others', async () => {
  const topic = uid();
  const a = await hub.join('Patient-open,SyncError', { topic, name: 'EHR' });
  const b = await hub.join('Patient-open,SyncError', { topic, name: 'Viewer', ack: 409 });
  const ev = hub.event('Patient-open', [patient('p1')], { topic });
  assert.equal((await hub.post(ev)).status, 202);
  const d = syncErrorDetails(await a.nextEvent('SyncError'));
  assert.deepEqual([d.eventId, d.eventName, d.subscriber, d.severity], [ev.id, 'Patient-open', 'Viewer', 'information'], 'seed 003: hub-generated SyncErrors are information');
  assert.match(d.diagnostics, /Viewer refused to follow .*409/);
  assert.ok(await b.nothing((m) => m.event?.['hub.event'] === 'SyncError', 300), 'not to the refusing subscriber');
  a.ws.close();
  b.ws.close();
});

test('neg22: a subscriber that does not answer within the ack timeout causes a SyncError, then is unsubscribed', async () => {
  const topic = uid();
  const a = await hub.join('Patient-open,SyncError', { topic, name: 'EHR' });
  const silent = await hub.join('Patient-open', { topic, name: 'Silent', ack: false });
  const ev = hub.event('Patient-open', [patient('p1')], { topic });
  assert.equal((await hub.post(ev)).status, 202);
  const d = syncErrorDetails(await a.nextEvent('SyncError', 6000));
  assert.deepEqual([d.eventId, d.subscriber], [ev.id, 'Silent']);
  assert.match(d.diagnostics, /Silent did not answer .* within 2 s/);
  const denial = await silent.next((m) => m['hub.mode'] === 'denied', 3000);
  assert.match(denial['hub.reason'], /unresponsive/);
  assert.equal((await closeFrame(silent)).code, 1000);
  refusedText(await hub.unsubscribe(silent.endpoint, { topic }), 404, /does not name an active subscription/);
  a.ws.close();
});

test('neg23: a socket closed with a code other than 1000/1001 causes a SyncError to the others; 1000 does not', async () => {
  const topic = uid();
  const a = await hub.join('Patient-open,SyncError', { topic, name: 'EHR' });
  const b = await hub.join('Patient-open', { topic, name: 'Crashy' });
  const c = await hub.join('Patient-open', { topic, name: 'Polite' });
  const open = hub.event('Patient-open', [patient('p1')], { topic });
  assert.equal((await hub.post(open)).status, 202);
  await Promise.all([a.nextEvent('Patient-open'), b.nextEvent('Patient-open'), c.nextEvent('Patient-open')]);
  const closed = await b.close(4000, 'crash');
  assert.equal(closed.code, 4000, 'the hub completes the closing handshake');
  const d = syncErrorDetails(await a.nextEvent('SyncError'));
  assert.equal(d.subscriber, 'Crashy');
  assert.equal(d.eventId, open.id);
  assert.match(d.diagnostics, /Crashy lost its connection to the hub \(WebSocket close code 4000\)/);
  assert.equal((await c.close(1000)).code, 1000);
  assert.ok(await a.nothing((m) => m.event?.['hub.event'] === 'SyncError', 500), 'req 86: no SyncError for 1000');
  // Either way the subscription ended (endpoints are single-use).
  refusedText(await hub.unsubscribe(b.endpoint, { topic }), 404, /does not name an active subscription/);
  a.ws.close();
});

test('neg24: malformed WebSocket messages are ignored and do not close the socket', async () => {
  const topic = uid();
  const s = await hub.join('Patient-open', { topic });
  for (const junk of ['not json', '[]', '{}', 'null', '{"id":5,"status":200}', '{"id":"unknown","status":200}', '{"id":"x","status":"abc"}', '{"id":"x","status":99999}', '{"status":200}', '{"id":"x"', '\u0000\uffff']) s.ws.send(junk);
  s.ws.send(Buffer.from([0, 1, 2, 255]), { binary: true });
  s.ws.send(JSON.stringify({ id: 'x', status: 200, pad: 'y'.repeat(70_000) }), { binary: false });
  const ev = hub.event('Patient-open', [patient('p1')], { topic });
  assert.equal((await hub.post(ev)).status, 202);
  assert.equal((await s.nextEvent('Patient-open')).id, ev.id, 'the socket still receives');
  assert.equal(s.ws.readyState, WebSocket.OPEN);
  // Its acks still count: no SyncError, no denial after the ack timeout.
  const other = await hub.join('SyncError', { topic });
  assert.ok(await other.nothing(() => true, 2300), 'acks after junk still settle notifications');
  assert.equal(s.ws.readyState, WebSocket.OPEN);
  s.ws.close();
  other.ws.close();
});

test('neg25: get current context of an unknown topic or after a close is 200 with the empty context; a malformed topic is 404', async () => {
  const empty = { 'context.type': '', context: [] };
  const unknown = await hub.getContext(uid('never'));
  assert.equal(unknown.status, 200);
  assert.match(unknown.headers.get('content-type'), /^application\/json/);
  assert.deepEqual(unknown.json, empty);
  const topic = uid();
  await hub.post(hub.event('Patient-open', [patient('p1')], { topic }));
  await hub.post(hub.event('Patient-close', [patient('p1')], { topic }));
  assert.deepEqual((await hub.getContext(topic)).json, empty);
  refusedText(await hub.request('/%zz'), 404, /not found/, /GET \/api\/hub\/\{topic\}/);
});

test('neg26: the configuration document is 200 application/json whatever the request looks like', async () => {
  for (const [path, headers] of [['/.well-known/fhircast-configuration', { accept: 'text/html' }], ['/.well-known/fhircast-configuration?x=1', {}], ['/.well-known/fhircast-configuration/', { authorization: 'Bearer junk' }]]) {
    const r = await hub.request(path, { headers });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('content-type'), 'application/json');
    assert.equal(r.json.websocketSupport, true);
  }
});

test('neg27: when the lease runs out the hub sends denied and closes the socket', async () => {
  const topic = uid();
  const s = await hub.join('Patient-open', { topic, lease: 1 });
  assert.equal(s.confirmation['hub.lease_seconds'], 1);
  const denial = await s.next((m) => m['hub.mode'] === 'denied', 4000);
  assert.deepEqual(denial, { 'hub.mode': 'denied', 'hub.topic': topic, 'hub.events': 'Patient-open', 'hub.reason': 'lease expired' });
  assert.deepEqual(await closeFrame(s), { code: 1000, reason: 'lease expired' });
  refusedText(await hub.unsubscribe(s.endpoint, { topic }), 404, /does not name an active subscription/);
});

test('req37: a topic holds at most MAX_SUBSCRIPTIONS_PER_TOPIC subscriptions, then 429 naming the limit; an unsubscribe makes room', async () => {
  const small = await startHub({ bindings: { MAX_SUBSCRIPTIONS_PER_TOPIC: '2' } });
  try {
    const topic = uid();
    const first = await small.subscribe({ topic, events: 'Patient-open' });
    assert.equal(first.status, 202, first.text);
    assert.equal((await small.subscribe({ topic, events: 'Patient-open' })).status, 202);
    refusedText(await small.subscribe({ topic, events: 'Patient-open' }), 429, /2/, /subscriptions/);
    // Another topic is not affected (the limit is per topic).
    assert.equal((await small.subscribe({ topic: uid(), events: 'Patient-open' })).status, 202);
    const endpoint = first.json['hub.channel.endpoint'];
    const un = await small.unsubscribe(endpoint, { topic });
    assert.equal(un.status, 202, un.text);
    assert.equal((await small.subscribe({ topic, events: 'Patient-open' })).status, 202);
  } finally {
    await small.stop();
  }
});

test('routing: unknown routes are 404 listing the routes; a wrong method is 405 with Allow', async () => {
  for (const path of ['/a/b', '/ws/t', '/ws/t/x/y', '/.well-known/other', '/.env']) {
    refusedText(await hub.request(path), 404, /not found\. The hub serves POST \/api\/hub, POST\|GET \/api\/hub\/\{topic\}/);
  }
  for (const [path, method, allow] of [['', 'GET', 'POST, OPTIONS'], ['', 'PUT', 'POST, OPTIONS'], ['/T1', 'DELETE', 'GET, POST, OPTIONS'], ['/T1', 'PATCH', 'GET, POST, OPTIONS'], ['/.well-known/fhircast-configuration', 'POST', 'GET, OPTIONS']]) {
    const r = await hub.request(path, { method });
    refusedText(r, 405, new RegExp(`method ${method} is not allowed here; allowed: ${allow}`));
    assert.equal(r.headers.get('allow'), allow);
  }
  const outside = await fetch(`${hub.origin}/nothing-here`);
  assert.equal(outside.status, 404);
  assert.match(await outside.text(), /the FHIRcast hub is at \/api\/hub/);
});

test('§5a-5: every refusal of this file was a 4xx; the hub still runs a subscribe-post-ack flow', async () => {
  const refusals = seen.filter((s) => s.status >= 300);
  assert.ok(refusals.length > 100, `${refusals.length} refusals`);
  const bad = seen.filter((s) => s.status >= 500);
  assert.deepEqual(bad, []);
  const topic = uid();
  const a = await hub.join('Patient-open', { topic });
  const b = await hub.join('Patient-open,SyncError', { topic });
  const ev = hub.event('Patient-open', [patient('p1')], { topic, id: randomUUID() });
  assert.equal((await hub.post(ev)).status, 202);
  assert.equal((await a.nextEvent('Patient-open')).id, ev.id);
  assert.equal((await b.nextEvent('Patient-open')).id, ev.id);
  assert.ok(await b.nothing((m) => m.event?.['hub.event'] === 'SyncError', 300));
  a.ws.close();
  b.ws.close();
});
