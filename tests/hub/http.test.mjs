// HTTP surface of the hub running in workerd: CORS (§5a-24), the configuration document
// (req 11-12, neg 26), body and message size limits (neg 18, neg 24), the WebSocket endpoint
// without Upgrade (426), and a generated corpus of hostile requests (all 4xx, never a 5xx).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { startHub, Subscriber, patient, uid, form, syncErrorDetails } from './harness.mjs';
import { raw, pool } from './wsutil.mjs';

const APP = 'https://app.example';
const EHR = 'https://ehr.example:8443';
const MAX_BODY = 4096;
const MAX_MESSAGE = 512;

let hub; // ALLOWED_ORIGINS is a list; small limits
let anyHub; // ALLOWED_ORIGINS=* (the harness default)

before(async () => {
  [hub, anyHub] = await Promise.all([
    startHub({ bindings: { ALLOWED_ORIGINS: `${APP}, ${EHR}/`, MAX_BODY_BYTES: String(MAX_BODY), MAX_MESSAGE_BYTES: String(MAX_MESSAGE), ACK_TIMEOUT_SECONDS: '2' } }),
    startHub(),
  ]);
});
after(async () => {
  await Promise.all([hub?.stop(), anyHub?.stop()]);
});

const subscribeForm = (topic, extra = {}) => form({ 'hub.channel.type': 'websocket', 'hub.mode': 'subscribe', 'hub.topic': topic, 'hub.events': 'Patient-open', ...extra });

test('§5a-24: a preflight from an allowed origin is 204 allowing GET/POST, Authorization and Content-Type', async () => {
  for (const [path, origin] of [['/api/hub', APP], [`/api/hub/${uid()}`, EHR], ['/api/hub/.well-known/fhircast-configuration', APP]]) {
    const r = await raw(hub, { method: 'OPTIONS', path, headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type' } });
    assert.equal(r.status, 204);
    assert.equal(r.headers['access-control-allow-origin'], origin);
    assert.deepEqual(r.headers['access-control-allow-methods'].split(/,\s*/).sort(), ['GET', 'OPTIONS', 'POST']);
    const allowed = r.headers['access-control-allow-headers'].toLowerCase().split(/,\s*/);
    assert.ok(allowed.includes('authorization') && allowed.includes('content-type'), allowed.join());
    assert.match(r.headers.vary, /Origin/);
    assert.ok(Number(r.headers['access-control-max-age']) > 0);
    assert.equal(r.headers['access-control-allow-credentials'], undefined, 'tokens travel in Authorization, not cookies');
  }
});

test('§5a-24: responses to an allowed origin carry its Access-Control-Allow-Origin and Vary: Origin, errors included', async () => {
  const topic = uid();
  const headers = { origin: APP };
  const requests = [
    ['subscribe 202', { body: subscribeForm(topic), headers: { ...headers, 'content-type': 'application/x-www-form-urlencoded' } }, 202],
    ['subscribe 400', { body: 'hub.mode=subscribe', headers: { ...headers, 'content-type': 'application/x-www-form-urlencoded' } }, 400],
    ['event 202', { body: JSON.stringify(hub.event('Patient-open', [patient('p1')], { topic })), headers: { ...headers, 'content-type': 'application/fhir+json' } }, 202],
    ['event 400', { body: '{', headers: { ...headers, 'content-type': 'application/json' } }, 400],
    ['415', { body: 'x', headers: { ...headers, 'content-type': 'text/plain' } }, 415],
    ['get context 200', { method: 'GET', path: `/api/hub/${topic}`, headers }, 200],
    ['well-known 200', { method: 'GET', path: '/api/hub/.well-known/fhircast-configuration', headers }, 200],
    ['404', { method: 'GET', path: '/api/hub/a/b', headers }, 404],
    ['405', { method: 'GET', path: '/api/hub', headers }, 405],
  ];
  for (const [what, req, status] of requests) {
    const r = await raw(hub, req);
    assert.equal(r.status, status, `${what}: ${r.text}`);
    assert.equal(r.headers['access-control-allow-origin'], APP, what);
    assert.match(r.headers.vary ?? '', /Origin/, what);
    assert.match(r.headers['access-control-expose-headers'] ?? '', /Content-Type/, what);
  }
});

test('§5a-24: an origin not in ALLOWED_ORIGINS gets no CORS headers (the request itself is served as usual)', async () => {
  const topic = uid();
  for (const origin of ['https://evil.example', 'https://app.example.evil.example', 'http://app.example', 'null']) {
    const pre = await raw(hub, { method: 'OPTIONS', headers: { origin, 'access-control-request-method': 'POST' } });
    assert.equal(pre.headers['access-control-allow-origin'], undefined, origin);
    assert.equal(pre.headers['access-control-allow-methods'], undefined, origin);
    const r = await raw(hub, { body: subscribeForm(topic), headers: { origin, 'content-type': 'application/x-www-form-urlencoded' } });
    assert.equal(r.status, 202);
    assert.equal(r.headers['access-control-allow-origin'], undefined, origin);
  }
  const none = await raw(hub, { method: 'GET', path: '/api/hub/.well-known/fhircast-configuration' });
  assert.equal(none.headers['access-control-allow-origin'], undefined, 'no Origin, no CORS');
});

test('§5a-24: with ALLOWED_ORIGINS=* any origin is echoed (never a literal *)', async () => {
  for (const origin of ['https://random.example', 'http://localhost:5173']) {
    const r = await raw(anyHub, { body: subscribeForm(uid()), headers: { origin, 'content-type': 'application/x-www-form-urlencoded' } });
    assert.equal(r.status, 202);
    assert.equal(r.headers['access-control-allow-origin'], origin);
    assert.match(r.headers.vary, /Origin/);
  }
});

test('neg26 req11 req12: the configuration document is always 200 application/json with exactly the STU3 fields', async () => {
  const expected = {
    eventsSupported: ['Patient-open', 'Patient-close', 'Encounter-open', 'Encounter-close', 'ImagingStudy-open', 'ImagingStudy-close', 'DiagnosticReport-open', 'DiagnosticReport-close', 'DiagnosticReport-update', 'DiagnosticReport-select', 'SyncError', 'UserLogout', 'UserHibernate', 'Home-open'],
    websocketSupport: true,
    fhircastVersion: '3.0.0',
    getCurrentSupport: true,
    capabilities: { supportsGetCurrentContext: true, supportsNonCurrentContextUpdates: true },
    fhirVersion: 'R4',
  };
  for (const h of [hub, anyHub]) {
    for (const headers of [{}, { accept: 'text/html' }, { accept: 'application/fhir+json' }, { origin: 'https://evil.example' }, { authorization: 'Bearer junk' }]) {
      const r = await raw(h, { method: 'GET', path: '/api/hub/.well-known/fhircast-configuration', headers });
      assert.equal(r.status, 200);
      assert.equal(r.headers['content-type'], 'application/json');
      assert.deepEqual(r.json, expected);
    }
  }
  const head = await raw(hub, { method: 'HEAD', path: '/api/hub/.well-known/fhircast-configuration' });
  assert.equal(head.status, 200);
  assert.equal(head.headers['content-type'], 'application/json');
});

test('neg18 issue13: a chunked body is refused as soon as it passes MAX_BODY_BYTES, not read whole first', async () => {
  const { port } = new URL(hub.origin);
  const { request } = await import('node:http');
  const answer = new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method: 'POST', path: `/api/hub/${uid()}`, headers: { 'content-type': 'application/fhir+json' } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (text += c));
      res.on('end', () => (req.destroy(), resolve({ status: res.statusCode, text })));
    });
    req.on('error', reject);
    // More than the limit, and then the body never ends: a hub that reads it whole before
    // checking its size never answers.
    req.write('x'.repeat(MAX_BODY + 1000));
  });
  const r = await Promise.race([answer, new Promise((resolve) => setTimeout(() => resolve({ status: 'no answer within 5 s' }), 5000))]);
  assert.equal(r.status, 413, r.text);
  assert.match(r.text, /larger than the hub's limit/);
});

test('neg18: a body over MAX_BODY_BYTES is 413, with and without Content-Length', async () => {
  const topic = uid();
  const big = JSON.stringify(hub.event('Patient-open', [patient('p1', { text: { div: 'x'.repeat(MAX_BODY) } })], { topic }));
  for (const chunked of [false, true]) {
    for (const path of ['/api/hub', `/api/hub/${topic}`]) {
      const r = await raw(hub, { path, body: big, chunked, headers: { 'content-type': 'application/fhir+json' } });
      assert.equal(r.status, 413, `${path} chunked=${chunked}: ${r.text}`);
      assert.match(r.headers['content-type'], /^application\/fhir\+json/);
      assert.equal(r.json.issue[0].code, 'too-long');
      assert.match(r.json.issue[0].diagnostics, new RegExp(`the body is larger than the hub's limit of ${MAX_BODY} bytes \\(neg 18\\)`));
    }
    const f = await raw(hub, { body: subscribeForm(topic, { 'subscriber.name': 'n'.repeat(MAX_BODY) }), chunked, headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    assert.equal(f.status, 413);
    assert.match(f.headers['content-type'], /^text\/plain/);
    assert.match(f.text, /larger than the hub's limit of 4096 bytes/);
  }
  // Exactly at the limit is not too large.
  for (const chunked of [false, true]) {
    const ev = hub.event('Patient-open', [patient('p2', { text: { div: '' } })], { topic });
    ev.event.context[0].resource.text.div = 'y'.repeat(MAX_BODY - Buffer.byteLength(JSON.stringify(ev)));
    const exact = JSON.stringify(ev);
    assert.equal(Buffer.byteLength(exact), MAX_BODY);
    const r = await raw(hub, { body: exact, chunked, headers: { 'content-type': 'application/fhir+json' } });
    assert.equal(r.status, 202, r.text);
  }
});

test('neg24: WebSocket messages over MAX_MESSAGE_BYTES are ignored (even a refusing ack) and the socket stays open', async () => {
  const topic = uid();
  const watcher = await hub.join('SyncError', { topic, name: 'Watcher' });
  const s = await hub.join('Patient-open', { topic, name: 'Big', ack: () => undefined });
  s.send('z'.repeat(10 * MAX_MESSAGE));
  const ev = hub.event('Patient-open', [patient('p1')], { topic });
  assert.equal((await hub.post(ev)).status, 202);
  assert.equal((await s.nextEvent('Patient-open')).id, ev.id);
  // An oversized 409 is ignored; the small 200 that follows settles the notification.
  s.send({ id: ev.id, status: 409, pad: 'p'.repeat(MAX_MESSAGE) });
  s.send({ id: ev.id, status: 200 });
  assert.ok(await watcher.nothing(() => true, 2500), 'no SyncError: the oversized refusal was not read, the ack was');
  assert.equal(s.ws.readyState, WebSocket.OPEN);
  // Just under the limit a message is read: a padded 409 draws the SyncError.
  const ev2 = hub.event('Patient-open', [patient('p2')], { topic });
  assert.equal((await hub.post(ev2)).status, 202);
  await s.nextEvent('Patient-open');
  const small = JSON.stringify({ id: ev2.id, status: 409, pad: '' });
  s.send(JSON.stringify({ id: ev2.id, status: 409, pad: 'q'.repeat(MAX_MESSAGE - Buffer.byteLength(small)) }));
  const d = syncErrorDetails(await watcher.nextEvent('SyncError'));
  assert.deepEqual([d.eventId, d.subscriber], [ev2.id, 'Big']);
  assert.equal(s.ws.readyState, WebSocket.OPEN);
  s.ws.close();
  watcher.ws.close();
});

test('req2: GET on a WebSocket endpoint without Upgrade: websocket is 426; the endpoint stays usable', async () => {
  const topic = uid();
  const r = await hub.subscribe({ topic, events: 'Patient-open' });
  const endpoint = r.json['hub.channel.endpoint'];
  const path = new URL(endpoint).pathname;
  for (const headers of [{}, { upgrade: 'h2c', connection: 'upgrade' }]) {
    const x = await raw(hub, { method: 'GET', path, headers });
    assert.equal(x.status, 426);
    assert.match(x.headers['content-type'], /^text\/plain/);
    assert.match(x.text, /this is a WebSocket endpoint: connect with a WebSocket client/);
  }
  const s = await Subscriber.connect(endpoint);
  hub.sockets.add(s.ws);
  assert.equal((await s.next())['hub.mode'], 'subscribe');
  s.ws.close();
});

/** A deterministic pseudo-random generator (mulberry32). */
function prng(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The hostile corpus: [label, request] pairs for `raw`, each of which must be refused with a 4xx. */
function corpus(topic, usedEndpoint) {
  const rnd = prng(20260730);
  const pick = (a) => a[Math.floor(rnd() * a.length)];
  const out = [];
  const json = (label, value, path = '/api/hub') => out.push([label, { path, body: typeof value === 'string' ? value : JSON.stringify(value), headers: { 'content-type': 'application/fhir+json' } }]);
  const formReq = (label, body) => out.push([label, { body, headers: { 'content-type': 'application/x-www-form-urlencoded' } }]);
  const topicPath = `/api/hub/${topic}`;

  // Random bytes under every content type, to both event URLs.
  const types = ['application/json', 'application/fhir+json', 'application/x-www-form-urlencoded', 'text/plain', undefined, 'application/json; charset=utf-16', ';;;', 'application/x-www-form-urlencoded; charset=latin1'];
  for (let i = 0; i < 48; i++) {
    const bytes = Buffer.from(Array.from({ length: Math.floor(rnd() * 3000) }, () => Math.floor(rnd() * 256)));
    const ct = types[i % types.length];
    out.push([`random bytes #${i} (${ct})`, { path: i % 3 ? '/api/hub' : topicPath, body: bytes, headers: ct ? { 'content-type': ct } : {} }]);
  }

  // Truncated JSON of a valid event and of a JSON subscription.
  const valid = JSON.stringify({ timestamp: new Date().toISOString(), id: 'e1', event: { 'hub.topic': topic, 'hub.event': 'Patient-open', context: [patient('p1')] } });
  for (let i = 0; i < 30; i++) json(`truncated event #${i}`, valid.slice(0, Math.floor(rnd() * (valid.length - 1))), i % 2 ? '/api/hub' : topicPath);
  const validSub = JSON.stringify({ 'hub.channel.type': 'websocket', 'hub.mode': 'subscribe', 'hub.topic': topic, 'hub.events': 'Patient-open' });
  for (let i = 0; i < 6; i++) json(`truncated subscription #${i}`, validSub.slice(0, Math.floor(rnd() * (validSub.length - 1))));

  // Wrong types in every field of an event.
  const base = () => JSON.parse(valid);
  const wrongString = [null, 0, 3.14, true, false, [], {}, ['x']];
  const fields = [
    ['timestamp', (b, v) => (b.timestamp = v), wrongString],
    ['id', (b, v) => (b.id = v), wrongString],
    ['event', (b, v) => (b.event = v), [null, 0, true, 'x', [], '{}']],
    ['hub.topic', (b, v) => (b.event['hub.topic'] = v), wrongString],
    ['hub.event', (b, v) => (b.event['hub.event'] = v), [...wrongString, '', 'x', 'Patient-', '-open']],
    ['context', (b, v) => (b.event.context = v), [null, 0, true, 'x', {}, []]],
    ['context[0]', (b, v) => (b.event.context[0] = v), [null, 0, 'x', [], true, {}]],
    ['context[0].key', (b, v) => (b.event.context[0].key = v), [null, 0, true, [], {}, '', 'PATIENT']],
    ['context[0].resource', (b, v) => (b.event.context[0].resource = v), [null, 0, 'x', [], true, {}]],
    ['resourceType', (b, v) => (b.event.context[0].resource.resourceType = v), [null, 0, [], {}, '', 'Encounter']],
    ['resource.id', (b, v) => (b.event.context[0].resource.id = v), [null, 0, [], {}]],
    ['context.versionId', (b, v) => (b.event['context.versionId'] = v), [0, true, [], {}]],
  ];
  let n = 0;
  for (const [name, set, values] of fields) {
    for (const v of values) {
      const b = base();
      set(b, v);
      json(`event ${name}=${JSON.stringify(v)}`, b, n++ % 2 ? '/api/hub' : topicPath);
    }
  }

  // Wrong types in every field of a JSON subscription, and bad values in a form.
  const sub = () => JSON.parse(validSub);
  const subFields = [
    ['hub.channel.type', [0, true, [], {}, 'webhook']],
    ['hub.mode', [0, true, [], {}, 'denied']],
    ['hub.topic', [0, true, [], {}, 'a/b']],
    ['hub.events', [0, true, {}, [1], [''], [['Patient-open']], '*']],
    ['hub.lease_seconds', [true, {}, [], 'x', -1, 0, 1.5, 1e30]],
    ['hub.channel.endpoint', [true, {}, [], 5]],
    ['subscriber.name', [true, {}, [], 5]],
  ];
  for (const [name, values] of subFields) {
    for (const v of values) {
      const b = sub();
      b[name] = v;
      json(`subscription ${name}=${JSON.stringify(v)}`, b);
    }
  }
  for (const [label, body] of [
    ['mode x', subscribeForm(topic, { 'hub.mode': 'x' })],
    ['channel x', subscribeForm(topic, { 'hub.channel.type': 'x' })],
    ['topic a/b', subscribeForm('a/b')],
    ['events *', subscribeForm(topic, { 'hub.events': '*' })],
    ['lease x', subscribeForm(topic, { 'hub.lease_seconds': 'x' })],
    ['endpoint unknown', subscribeForm(topic, { 'hub.channel.endpoint': 'wss://x/y' })],
    ['bad escape %zz', `${subscribeForm(topic)}&hub.events=%zz`],
    ['bad escape %', 'hub.channel.type=websocket&hub.mode=subscribe&hub.topic=%'],
    ['invalid UTF-8', `hub.channel.type=websocket&hub.mode=subscribe&hub.topic=${topic}&hub.events=%C3%28`],
    ['key escape', '%FF=1&hub.mode=subscribe'],
    ['only ampersands', '&&&&'],
    ['only equals', '===='],
    ['json as form', validSub],
  ]) formReq(`form ${label}`, body);

  // Huge strings (under the body limit) and bodies over it.
  const big = 'x'.repeat(3000);
  json('huge id', { ...base(), id: big });
  json('huge topic', { ...base(), event: { ...base().event, 'hub.topic': big } });
  json('huge event name', { ...base(), event: { ...base().event, 'hub.event': big } });
  json('huge timestamp', { ...base(), timestamp: big });
  formReq('huge form topic', subscribeForm(big));
  formReq('huge form events', subscribeForm(topic, { 'hub.events': big }));
  formReq('huge form name', subscribeForm(topic, { 'subscriber.name': big }));
  formReq('huge form endpoint', subscribeForm(topic, { 'hub.channel.endpoint': big }));
  json('100 KB event', { ...base(), pad: 'x'.repeat(100_000) });
  formReq('100 KB form', subscribeForm(topic, { pad: 'x'.repeat(100_000) }));
  out.push(['100 KB chunked', { body: 'x'.repeat(100_000), chunked: true, headers: { 'content-type': 'application/json' } }]);

  // Deep nesting, unbalanced or in the wrong place.
  for (const depth of [10, 500, 2000]) {
    json(`deep array ${depth}`, '['.repeat(depth));
    json(`deep object ${depth}`, '{"a":'.repeat(depth));
    json(`deep context ${depth}`, valid.replace('"context":[', `"context":${'['.repeat(depth)}`));
  }
  json('deep subscription events', { ...sub(), 'hub.events': JSON.parse(`${'['.repeat(1000)}${']'.repeat(1000)}`) });

  // Unknown paths and wrong methods.
  const segs = ['a', 'ws', '.well-known', '%zz', '%00', '..', '%2e%2e', 'x%2Fy', 'fhircast-configuration', 'topic'];
  for (let i = 0; i < 24; i++) {
    const depth = 2 + Math.floor(rnd() * 3);
    const path = `/api/hub/${Array.from({ length: depth }, () => pick(segs)).join('/')}`;
    // Dot segments are resolved by URL parsing: keep paths that still name no route.
    const resolved = new URL(`http://x${path}`).pathname;
    const under = resolved.startsWith('/api/hub/') ? resolved.slice(9).split('/') : null;
    if (!under || under.length < 2 || resolved === '/api/hub/.well-known/fhircast-configuration') continue;
    out.push([`unknown path ${path}`, { method: pick(['GET', 'POST', 'PUT', 'DELETE', 'PATCH']), path, headers: { 'content-type': 'application/json' }, body: '{}' }]);
  }
  for (const path of ['/', '/x', '/api', '/api/hubx', '/api/hub/%zz', '/api/hub/..%2F..%2Fetc%2Fpasswd', '/api/hub/a%20b', '/api/hub/%00', '/api/hub/.well-known/other']) {
    out.push([`unknown ${path}`, { method: 'GET', path }]);
  }
  for (const method of ['PUT', 'DELETE', 'PATCH', 'GET']) out.push([`${method} /api/hub`, { method, path: '/api/hub' }]);
  out.push(['POST well-known', { method: 'POST', path: '/api/hub/.well-known/fhircast-configuration', body: '{}', headers: { 'content-type': 'application/json' } }]);

  // Replayed endpoints: a used (unsubscribed) one, again and again.
  for (let i = 0; i < 4; i++) {
    formReq(`replayed unsubscribe #${i}`, form({ 'hub.channel.type': 'websocket', 'hub.mode': 'unsubscribe', 'hub.topic': topic, 'hub.channel.endpoint': usedEndpoint }));
    formReq(`replayed resubscribe #${i}`, subscribeForm(topic, { 'hub.channel.endpoint': usedEndpoint }));
  }
  out.push(['used endpoint without Upgrade', { method: 'GET', path: new URL(usedEndpoint).pathname }]);
  return out;
}

/** Opens a WebSocket; resolves with the refusal status or 101. */
function upgradeStatus(url) {
  return new Promise((resolve) => {
    const ws = new WebSocket(url);
    ws.on('error', () => resolve('error'));
    ws.once('open', () => (ws.terminate(), resolve(101)));
    ws.once('unexpected-response', (_req, res) => (res.resume(), resolve(res.statusCode)));
  });
}

test('neg1-27 §5a-5: a generated corpus of hostile requests is refused with 4xx, never a 5xx; the hub then works normally', async () => {
  const topic = uid();
  const used = await hub.join('Patient-open', { topic });
  const live = await hub.join('Patient-open', { topic });
  assert.equal((await hub.unsubscribe(used.endpoint, { topic })).status, 202);
  const requests = corpus(topic, used.endpoint);
  const answers = await pool(requests, 6, async ([label, req]) => {
    try {
      return { label, ...(await raw(hub, req)) };
    } catch (e) {
      return { label, status: `transport error ${e.code ?? e.message}` };
    }
  });
  // Replayed and reused WebSocket endpoints.
  const wsAnswers = [];
  for (let i = 0; i < 3; i++) wsAnswers.push({ label: `used endpoint upgrade #${i}`, status: await upgradeStatus(used.endpoint) });
  for (let i = 0; i < 3; i++) wsAnswers.push({ label: `connected endpoint upgrade #${i}`, status: await upgradeStatus(live.endpoint) });
  wsAnswers.push({ label: 'endpoint under another topic', status: await upgradeStatus(live.endpoint.replace(topic, uid())) });
  const all = [...answers, ...wsAnswers];
  assert.ok(all.length >= 200, `${all.length} requests`);
  const byStatus = {};
  for (const a of all) byStatus[a.status] = (byStatus[a.status] ?? 0) + 1;
  console.log(`hostile corpus: ${all.length} requests, by status ${JSON.stringify(byStatus)}`);
  const not4xx = all.filter((a) => !(a.status >= 400 && a.status < 500)).map((a) => `${a.label}: ${a.status} ${a.text?.slice(0, 200) ?? ''}`);
  assert.deepEqual(not4xx, [], 'every hostile request is a 4xx');
  // Every refusal says something.
  const silent = answers.filter((a) => a.status !== 405 && a.text !== undefined && a.text.length < 10 && a.label !== 'used endpoint without Upgrade');
  assert.deepEqual(silent.map((a) => `${a.label}: ${a.status} ${JSON.stringify(a.text)}`), []);
  assert.equal(live.ws.readyState, WebSocket.OPEN, 'a subscriber of the battered topic is still connected');

  // A normal flow still works: subscribe, connect, post, receive, ack.
  const a = await hub.join('Patient-open,SyncError', { topic, name: 'A' });
  const ev = hub.event('Patient-open', [patient('p1')], { topic });
  assert.equal((await hub.post(ev)).status, 202);
  assert.equal((await a.nextEvent('Patient-open')).id, ev.id);
  assert.equal((await live.nextEvent('Patient-open')).id, ev.id);
  assert.ok(await a.nothing((m) => m.event?.['hub.event'] === 'SyncError', 300));
  a.ws.close();
  live.ws.close();
});

test('settings: vars given as numbers or booleans (unquoted in wrangler.toml [vars]) apply as their text', async () => {
  const h = await startHub({ bindings: { MAX_BODY_BYTES: 2048, REQUIRE_TOPIC_BINDING: false } });
  try {
    const r = await h.post(h.event('Patient-open', [patient('p1', { text: { div: 'x'.repeat(3000) } })]));
    assert.equal(r.status, 413, r.text);
    assert.match(r.text, /limit of 2048 bytes/);
    assert.equal((await h.post(h.event('Patient-open', [patient('p1')]))).status, 202);
  } finally {
    await h.stop();
  }
});
