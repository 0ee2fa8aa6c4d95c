// The hostile-input corpus against the running hub, in both authorization modes: over 10,000
// inputs in all (SCALE below) — over 6,000 malformed or oversized HTTP requests
// (grammar-aware mutations of valid events and forms, wrong types in every field, forms with a
// bad parameter, huge bodies, unknown endpoints and methods, replayed and foreign endpoints,
// wrong topics, and — with AUTH_MODE=jwt — bad tokens on every route) and thousands of
// hostile WebSocket messages.
// Every request is answered with a 4xx (or, for a mutation that happens to still be a valid
// event, accepted with its id echoed); never a 5xx, never a dropped connection; every hostile
// WebSocket message is ignored (neg 24). Afterwards the hub still runs a normal
// subscribe-publish-ack flow. The corpus is generated from a fixed seed: every run is the same.
//
// http.test.mjs has the hand-written mini-corpus (281 requests, one per known edge case); this
// file is the generated, larger one.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { startHub, Subscriber, patient, report, reportRef, bundle, observationPut, uid, form } from './harness.mjs';
import { raw, upgradeRefusal, sleep, pool } from './wsutil.mjs';
import { jwt, otherRsa, otherEc, b64, now, JWT_BINDINGS } from './tokens.mjs';

/**
 * How many times the generated parts of the corpus are drawn (same seed, more draws): 4 gives
 * over 10,000 inputs in all (issue 13); `HOSTILE_SCALE` raises it for a longer run.
 */
const SCALE = Math.max(1, Number(process.env.HOSTILE_SCALE ?? 4));

let openHub;
let jwtHub;
before(async () => {
  [openHub, jwtHub] = await Promise.all([startHub({ bindings: { MAX_BODY_BYTES: '65536' } }), startHub({ bindings: { ...JWT_BINDINGS, MAX_BODY_BYTES: '65536' } })]);
});
after(async () => Promise.all([openHub?.stop(), jwtHub?.stop()]));

/** A deterministic pseudo-random generator (mulberry32). */
function prng(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Fragments that break parsers: JSON and form edge cases, protocol keys, type limits. */
const DICT = ['null', 'true', '0', '-1', '1e999', '18446744073709551616', '""', '"\\u0000"', '"\\ud800"', '[]', '{}', '[[[[[[[[[[[[[[[[', '}}}}', ',', ':', '"', '\\', '"Patient-open"', '"SyncError"', '"*"', '"patient"', '"updates"', '"resource"', '"reference"', '"context.versionId"', '"hub.topic"', '"resourceType"', '"Bundle"', '"POST"', '"DELETE"', '"2023-04-01T010:38:04.16"', '%', '%zz', '%00', '%C3%28', '&', '=', '+', '&hub.topic=x', '&hub.events=*', '&hub.mode=denied', 'é𝄞', '\ufeff', '\r\n', 'x'.repeat(300)];

function mutator(rnd) {
  const pick = (a) => a[Math.floor(rnd() * a.length)];
  return (text) => {
    let b = Buffer.from(text);
    for (let k = 1 + Math.floor(rnd() * 3); k > 0; k--) {
      const at = Math.floor(rnd() * (b.length + 1));
      const end = Math.min(b.length, at + Math.floor(rnd() * 16));
      const piece = Buffer.from(pick(DICT));
      switch (Math.floor(rnd() * 6)) {
        case 0: b = Buffer.concat([b.subarray(0, at), piece, b.subarray(at)]); break;
        case 1: b = Buffer.concat([b.subarray(0, at), b.subarray(end)]); break;
        case 2: b = Buffer.concat([b.subarray(0, at), piece, b.subarray(end)]); break;
        case 3: b = Buffer.concat([b.subarray(0, at), ...Array(1 + Math.floor(rnd() * 40)).fill(b.subarray(at, end)), b.subarray(at)]); break;
        case 4: b = b.subarray(0, at); break;
        default: if (at < b.length) { b = Buffer.from(b); b[at] = Math.floor(rnd() * 256); }
      }
    }
    return b;
  };
}

const FORM = 'application/x-www-form-urlencoded';
const FHIR = 'application/fhir+json';

/**
 * The HTTP corpus for one hub: [label, request, mayAccept] where `request` is for `raw` and
 * `mayAccept` marks mutations of valid input, which may still be valid.
 */
function httpCorpus(hub, { topic, otherTopic, usedEndpoint, liveEndpoint, foreignEndpoint, version, token }) {
  const rnd = prng(hub === jwtHub ? 7 : 20261122);
  const pick = (a) => a[Math.floor(rnd() * a.length)];
  const mutate = mutator(rnd);
  const auth = token ? { authorization: `Bearer ${token}` } : {};
  const out = [];
  const add = (label, req, mayAccept = false) => out.push([label, { ...req, headers: { ...auth, ...req.headers } }, mayAccept]);
  const event = (name, context, extra = {}) => ({ timestamp: new Date().toISOString(), id: `h-${Math.floor(rnd() * 1e9)}`, event: { 'hub.topic': topic, 'hub.event': name, context, ...extra } });
  const valids = [
    event('Patient-open', [patient('p1')]),
    event('Patient-close', [patient('p1')]),
    event('DiagnosticReport-open', [report('r1'), patient('p1')]),
    event('DiagnosticReport-update', [reportRef('r1'), bundle([observationPut('o1')], 'b1')], { 'context.versionId': version }),
    event('DiagnosticReport-select', [reportRef('r1'), { key: 'select', reference: { reference: 'Observation/o1' } }]),
    event('Home-open', []),
  ];
  const paths = ['/api/hub', `/api/hub/${topic}`];

  // 1. Grammar-aware mutations of valid events, to both event URLs (some stay valid).
  for (let i = 0; i < 420 * SCALE; i++) {
    add(`mutated event #${i}`, { path: pick(paths), body: mutate(JSON.stringify(pick(valids))), headers: { 'content-type': pick([FHIR, 'application/json']) } }, true);
  }
  // 2. Mutated forms (a mutation may leave a valid subscription).
  const validForm = form({ 'hub.channel.type': 'websocket', 'hub.mode': 'subscribe', 'hub.topic': topic, 'hub.events': 'Patient-open,Patient-close', 'hub.lease_seconds': 60, 'subscriber.name': 'Fuzzed' });
  for (let i = 0; i < 160 * SCALE; i++) add(`mutated form #${i}`, { body: mutate(validForm), headers: { 'content-type': FORM } }, true);

  // 3. Forms with at least one bad parameter: every other one valid, absent or repeated.
  const good = { 'hub.channel.type': 'websocket', 'hub.mode': 'subscribe', 'hub.topic': topic, 'hub.events': 'Patient-open', 'hub.lease_seconds': '60', 'subscriber.name': 'X' };
  // Only values the hub refuses: it documents trimming every value, reading hub.channel.type
  // and hub.mode case-insensitively, and an empty optional parameter as absent.
  const bad = {
    'hub.channel.type': ['', 'webhook', 'web socket', 'websocket,websocket'],
    'hub.mode': ['', 'denied', 'sub scribe', 'unsubscribe'],
    'hub.topic': ['', 'a/b', 'a b', 'a?b', 'x'.repeat(300), '.', '..'],
    'hub.events': ['', '*', '*-open', ',', 'Patient-', 'Patient-open,*', 'x'.repeat(300), 'Heart beat'],
    'hub.lease_seconds': ['0', '-1', '1.5', 'x', '1e3', '99999999999999999999999', '+5'],
  };
  const badKeys = Object.keys(bad);
  for (let i = 0; i < 140 * SCALE; i++) {
    const key = badKeys[i % badKeys.length];
    const params = Object.entries(good).filter(([k]) => k === key || rnd() > 0.15).map(([k, v]) => [k, k === key ? pick(bad[key]) : v]);
    if (rnd() < 0.2) params.push(pick(params)); // a repeated parameter (neg 7)
    const body = params.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&');
    // 'unsubscribe' is bad here only because there is no endpoint; keep it so.
    add(`form ${key}=${body.slice(0, 40)}`, { body, headers: { 'content-type': FORM } });
  }

  // 4. Wrong types in every field of an event.
  const wrong = [null, 0, -1, 3.5, true, [], {}, [''], 'x'.repeat(5000)];
  const setters = [
    ['timestamp', (b, v) => (b.timestamp = v)],
    ['id', (b, v) => (b.id = v)],
    ['event', (b, v) => (b.event = v)],
    ['hub.topic', (b, v) => (b.event['hub.topic'] = v)],
    ['hub.event', (b, v) => (b.event['hub.event'] = v)],
    ['context', (b, v) => (b.event.context = v)],
    ['context[0]', (b, v) => (b.event.context[0] = v)],
    ['context[0].key', (b, v) => (b.event.context[0].key = v)],
    ['context[0].resource', (b, v) => (b.event.context[0].resource = v)],
    ['resourceType', (b, v) => (b.event.context[0].resource.resourceType = v)],
    ['resource.id', (b, v) => (b.event.context[0].resource.id = v)],
    ['context.versionId', (b, v) => (b.event['context.versionId'] = v)],
  ];
  for (const [name, set] of setters) {
    for (const v of wrong) {
      if (name === 'resource.id' && typeof v === 'string') continue; // a long id is still an id
      if (name === 'context.versionId' && v === null) continue; // null is absent: still valid
      const b = structuredClone(valids[0]);
      set(b, v);
      add(`event ${name}=${JSON.stringify(v).slice(0, 20)}`, { path: pick(paths), body: JSON.stringify(b), headers: { 'content-type': FHIR } });
    }
  }
  // Updates: wrong versions, bundles of the wrong shape.
  const upd = (ctx, v = version) => JSON.stringify(event('DiagnosticReport-update', ctx, { 'context.versionId': v }));
  for (const v of ['', 'stale', version + 'x', null]) add(`update version ${v}`, { body: upd([reportRef('r1'), bundle([observationPut('o2')])], v), headers: { 'content-type': FHIR } });
  for (const entries of [[{ request: { method: 'POST' }, resource: { resourceType: 'Observation', id: 'o' } }], [observationPut('o'), observationPut('o')], [{ request: { method: 'DELETE' } }], [{ request: { method: 'PUT' } }], [{}], ['x'], [null]]) {
    add(`bad bundle ${JSON.stringify(entries).slice(0, 30)}`, { body: upd([reportRef('r1'), bundle(entries)]), headers: { 'content-type': FHIR } });
  }

  // 5. Oversized bodies (limit 64 KiB) under every content type, and huge strings under it.
  for (const [i, ct] of [FHIR, 'application/json', FORM, 'text/plain', undefined].entries()) {
    for (const size of [65_537, 200_000, 1_100_000]) {
      add(`body ${size} B (${ct})`, { path: paths[i % 2], body: Buffer.alloc(size, 0x61), headers: ct ? { 'content-type': ct } : {}, chunked: size === 200_000 });
    }
  }
  for (const field of ['id', 'hub.topic', 'hub.event', 'timestamp']) {
    const b = structuredClone(valids[0]);
    if (field === 'id' || field === 'timestamp') b[field] = 'y'.repeat(60_000);
    else b.event[field] = 'y'.repeat(60_000);
    add(`huge ${field}`, { body: JSON.stringify(b), headers: { 'content-type': FHIR } });
  }
  for (const depth of [100, 3000, 20_000]) {
    add(`nested ${depth}`, { body: '['.repeat(depth) + ']'.repeat(depth), headers: { 'content-type': FHIR } });
    add(`nested context ${depth}`, { body: JSON.stringify(valids[0]).replace('"context":[', `"context":${'['.repeat(depth)}`), headers: { 'content-type': FHIR } });
  }
  // Random bytes.
  for (let i = 0; i < 40; i++) {
    const body = Buffer.from(Array.from({ length: Math.floor(rnd() * 4000) }, () => Math.floor(rnd() * 256)));
    add(`random bytes #${i}`, { path: pick(paths), body, headers: { 'content-type': pick([FHIR, FORM, 'application/json', 'text/plain']) } });
  }

  // 6. Unknown endpoints and wrong methods.
  const segs = ['a', 'ws', '.well-known', '%zz', '%00', 'x%2Fy', 'fhircast-configuration', topic, 'internal', 'event', 'subscription', '%2e%2e'];
  for (let i = 0; i < 60; i++) {
    const path = `/api/hub/${Array.from({ length: 2 + Math.floor(rnd() * 3) }, () => pick(segs)).join('/')}`;
    // As the hub sees it: dot segments (also %2e%2e) resolved, a trailing slash ignored; a path
    // that resolves to a route is not an unknown one.
    const resolved = new URL(`http://x${path}`).pathname.replace(/(.)\/+$/, '$1');
    const under = resolved.startsWith('/api/hub/') ? resolved.slice(9).split('/') : null;
    if (!under || under.length < 2 || resolved === '/api/hub/.well-known/fhircast-configuration' || under[0] === 'ws') continue;
    add(`unknown ${path}`, { method: pick(['GET', 'POST', 'PUT', 'DELETE', 'PATCH']), path, body: '{}', headers: { 'content-type': 'application/json' } });
  }
  for (const method of ['PUT', 'DELETE', 'PATCH', 'GET']) add(`${method} /api/hub`, { method, path: '/api/hub' });
  for (const method of ['PUT', 'DELETE', 'PATCH']) add(`${method} topic`, { method, path: `/api/hub/${topic}` });
  for (const path of ['/', '/api', '/api/hubx', '/API/HUB', '/api/hub/%zz', '/api/hub/a%20b', '/api/hub/..%2F..%2Fetc%2Fpasswd', '/internal/event', '/internal/ws/x']) add(`unknown ${path}`, { method: pick(['GET', 'POST']), path, body: '{}', headers: { 'content-type': FHIR } });

  // 7. Replayed, foreign and forged endpoints.
  const endpointForm = (mode, endpoint, t = topic) => form({ 'hub.channel.type': 'websocket', 'hub.mode': mode, 'hub.topic': t, 'hub.channel.endpoint': endpoint, ...(mode === 'subscribe' ? { 'hub.events': 'Patient-open' } : {}) });
  // (Only the last segment, the secret token, names a subscription: the live endpoint under
  // another host or topic path is still the live subscription, so it is not forged here.)
  const forged = [usedEndpoint, foreignEndpoint, liveEndpoint.replace(/[0-9a-f]{8}$/, '00000000'), liveEndpoint + 'x', 'wss://evil.example/x', 'wss://h/ws/../../x', liveEndpoint.slice(0, -1), `${liveEndpoint}/..`];
  for (let i = 0; i < 36; i++) {
    const endpoint = forged[i % forged.length];
    add(`replayed ${i % 2 ? 'unsubscribe' : 'resubscribe'} ${endpoint.slice(-20)}`, { body: endpointForm(i % 2 ? 'unsubscribe' : 'subscribe', endpoint), headers: { 'content-type': FORM } });
  }
  add('endpoint of another topic', { body: endpointForm('unsubscribe', liveEndpoint, otherTopic), headers: { 'content-type': FORM } });
  add('used endpoint without Upgrade', { method: 'GET', path: new URL(usedEndpoint).pathname });

  // 8. Wrong topics: the path names one topic, the body another; malformed topic paths.
  for (let i = 0; i < 20; i++) {
    const b = structuredClone(pick(valids));
    b.event['hub.topic'] = pick([otherTopic, topic.toUpperCase(), `${topic}/x`, `${topic}\u0000`, '..']);
    add(`wrong topic #${i}`, { path: `/api/hub/${topic}`, body: JSON.stringify(b), headers: { 'content-type': FHIR } });
  }
  for (const t of ['%zz', 'a%2Fb', 'x'.repeat(400), '%00']) add(`get ${t.slice(0, 10)}`, { method: 'GET', path: `/api/hub/${t}` });
  return out;
}

/** Bad tokens for the jwt hub: every way a bearer token can be wrong. */
function badTokens(topic, otherTopic) {
  const [h, p, s] = jwt().split('.');
  return [
    ['missing', undefined],
    ['empty', ''],
    ['not a JWT', 'abc'],
    ['two parts', `${h}.${p}`],
    ['four parts', `${h}.${p}.${s}.x`],
    ['header not base64url', `!!.${p}.${s}`],
    ['header without alg', `${b64({ typ: 'JWT' })}.${p}.${s}`],
    ['payload not JSON', `${h}.${b64('nope')}.${s}`],
    ['payload an array', `${h}.${b64([1])}.${s}`],
    ['signature not base64url', `${h}.${p}.+/=`],
    ['signature of another payload', `${h}.${b64({ iss: 'x' })}.${s}`],
    ['alg none', jwt({}, { alg: 'none' })],
    ['alg RS512', jwt({}, { header: { alg: 'RS512' } })],
    ['HS256 with the wrong secret', jwt({}, { alg: 'HS256', key: 'another secret of at least thirty-two bytes' })],
    ['RS256 by another key', jwt({}, { key: otherRsa.privateKey })],
    ['ES256 by another key', jwt({}, { alg: 'ES256', key: otherEc.privateKey })],
    ['unknown kid', jwt({}, { kid: 'nope' })],
    ['expired', jwt({ exp: now() - 120 })],
    ['not yet valid', jwt({ nbf: now() + 600 })],
    ['wrong issuer', jwt({ iss: 'https://evil.example' })],
    ['wrong audience', jwt({ aud: 'https://other.example' })],
    ['no fhircast scope', jwt({ scope: 'openid profile' })],
    ['read only', jwt({ scope: 'fhircast/*.read' })],
    ['write only', jwt({ scope: 'fhircast/*.write' })],
    ['another event only', jwt({ scope: 'fhircast/Encounter-open.*' })],
    ['bound to another topic', jwt({ 'hub.topic': otherTopic })],
    ['huge', `${h}.${b64({ pad: 'x'.repeat(20_000) })}.${s}`],
  ].map(([label, token]) => [label, token === undefined ? {} : { authorization: `Bearer ${token}` }]).concat([
    ['Basic scheme', { authorization: 'Basic dXNlcjpwYXNz' }],
    ['scheme only', { authorization: 'Bearer' }],
    ['two tokens', { authorization: `Bearer ${jwt({ scope: 'openid' })} ${jwt()}` }],
  ]);
}

/** Sends every request; returns the answers that break the rules, and counts. */
async function runCorpus(hub, corpus) {
  const answers = await pool(corpus, 6, async ([label, req, mayAccept]) => {
    try {
      const r = await raw(hub, req);
      return { label, status: r.status, text: r.text, json: r.json, req, mayAccept };
    } catch (e) {
      return { label, status: `transport error ${e.code ?? e.message}`, req, mayAccept };
    }
  });
  const byStatus = {};
  for (const a of answers) byStatus[a.status] = (byStatus[a.status] ?? 0) + 1;
  const broken = answers.filter((a) => {
    if (typeof a.status === 'number' && a.status >= 400 && a.status < 500) return false;
    // A mutation that is still valid: accepted as the event (or subscription) it names.
    if (a.mayAccept && a.status === 202) {
      const body = Buffer.isBuffer(a.req.body) ? a.req.body.toString() : a.req.body;
      if (a.json?.id !== undefined) return JSON.parse(body).id !== a.json.id;
      return typeof a.json?.['hub.channel.endpoint'] !== 'string';
    }
    return true;
  });
  const accepted = answers.filter((a) => a.status === 202).length;
  return { answers, byStatus, accepted, broken: broken.map((a) => `${a.label}: ${a.status} ${String(a.text ?? '').slice(0, 160)}`) };
}

/** Subscribe, connect, publish, receive, ack: the hub still works. */
async function normalFlow(hub, token) {
  const topic = uid();
  const a = await hub.join('Patient-open,SyncError', { topic, name: 'A', token });
  const b = await hub.join('Patient-open', { topic, name: 'B', token });
  const ev = hub.event('Patient-open', [patient('after')], { topic });
  const r = await hub.post(ev, { token });
  assert.equal(r.status, 202, r.text);
  assert.equal((await a.nextEvent('Patient-open')).id, ev.id);
  assert.equal((await b.nextEvent('Patient-open')).id, ev.id);
  assert.ok(await a.nothing((m) => m.event?.['hub.event'] === 'SyncError', 300), 'every ack settled');
  a.ws.close();
  b.ws.close();
}

/** What each hub is given to aim at: a topic with a live and a used endpoint, and another topic. */
async function targets(hub, token) {
  const topic = uid();
  const otherTopic = uid();
  const used = await hub.join('Patient-open', { topic, token });
  const live = await hub.join('Patient-open,DiagnosticReport-open,SyncError', { topic, name: 'Live', token });
  const foreign = await hub.join('Patient-open', { topic: otherTopic, token });
  assert.equal((await hub.unsubscribe(used.endpoint, { topic, token })).status, 202);
  const open = await hub.post(hub.event('DiagnosticReport-open', [report('r1'), patient('p1')], { topic }), { token });
  assert.equal(open.status, 202, open.text);
  return { topic, otherTopic, usedEndpoint: used.endpoint, liveEndpoint: live.endpoint, foreignEndpoint: foreign.endpoint, version: open.json['context.versionId'], live, foreign, token };
}

test('neg1-27 §5a-5 (hostile corpus, open mode): over 3,000 generated hostile requests: 4xx or accepted as valid, never a 5xx; the hub still serves', async () => {
  const t = await targets(openHub);
  const corpus = httpCorpus(openHub, t);
  const { byStatus, accepted, broken } = await runCorpus(openHub, corpus);
  const upgrades = [];
  for (const url of [t.usedEndpoint, t.liveEndpoint, t.liveEndpoint.replace(t.topic, t.otherTopic), t.liveEndpoint.replace(/.$/, 'z'), `${t.liveEndpoint}/x`]) {
    upgrades.push((await upgradeRefusal(url)).status);
  }
  console.log(`hostile corpus (open): ${corpus.length} HTTP requests + ${upgrades.length} upgrades; by status ${JSON.stringify(byStatus)}; ${accepted} still-valid mutations accepted`);
  assert.deepEqual(broken, [], 'every hostile request is a 4xx (or a still-valid mutation, accepted as itself)');
  assert.ok(corpus.length >= 750 * SCALE, `${corpus.length} requests`);
  assert.ok(upgrades.every((s) => s === 403 || s === 404), `upgrades refused: ${upgrades}`);
  assert.equal(t.live.ws.readyState, WebSocket.OPEN, 'a subscriber of the battered topic is still connected');
  assert.equal(t.foreign.all.filter((m) => m.event).length, 0, 'nothing reached the other topic');
  await normalFlow(openHub);
  t.live.ws.close();
  t.foreign.ws.close();
});

test('neg9 neg4 neg13 §5a-5 (hostile corpus, AUTH_MODE=jwt): bad tokens on every route are 401/403; with a valid token the corpus is 4xx; never a 5xx', async () => {
  const token = jwt();
  const t = await targets(jwtHub, token);
  const tokens = badTokens(t.topic, t.otherTopic);
  const validEvent = JSON.stringify(jwtHub.event('Patient-open', [patient('p9')], { topic: t.topic }));
  const routes = [
    ['subscribe', { body: form({ 'hub.channel.type': 'websocket', 'hub.mode': 'subscribe', 'hub.topic': t.topic, 'hub.events': 'Patient-open' }), headers: { 'content-type': FORM } }],
    ['unsubscribe', { body: form({ 'hub.channel.type': 'websocket', 'hub.mode': 'unsubscribe', 'hub.topic': t.topic, 'hub.channel.endpoint': t.liveEndpoint }), headers: { 'content-type': FORM } }],
    ['event', { body: validEvent, headers: { 'content-type': FHIR } }],
    ['event to topic', { path: `/api/hub/${t.topic}`, body: validEvent, headers: { 'content-type': FHIR } }],
    ['get context', { method: 'GET', path: `/api/hub/${t.topic}` }],
  ];
  const tokenCorpus = [];
  for (const [label, headers] of tokens) {
    for (const [route, req] of routes) {
      // A read-only token may subscribe and read; a write-only one may post: not hostile there.
      if (label === 'read only' && (route === 'subscribe' || route === 'get context' || route === 'unsubscribe')) continue;
      if (label === 'write only' && (route.startsWith('event') || route === 'unsubscribe')) continue;
      if (label === 'another event only' && route === 'unsubscribe') continue; // any fhircast scope may cancel
      tokenCorpus.push([`${label} → ${route}`, { ...req, headers: { ...req.headers, ...headers } }]);
    }
  }
  const tokenRun = await runCorpus(jwtHub, tokenCorpus);
  const statusOf = Object.fromEntries(tokenRun.answers.map((a) => [a.label, a.status]));
  const bodyRun = await runCorpus(jwtHub, httpCorpus(jwtHub, t));
  const total = tokenCorpus.length + bodyRun.answers.length;
  console.log(`hostile corpus (jwt): ${tokenCorpus.length} bad-token requests, by status ${JSON.stringify(tokenRun.byStatus)}; ${bodyRun.answers.length} malformed requests with a valid token, by status ${JSON.stringify(bodyRun.byStatus)}`);
  assert.deepEqual(tokenRun.broken, [], 'every bad token is refused with a 4xx');
  assert.ok(tokenRun.answers.every((a) => a.status === 401 || a.status === 403 || (a.status === 413 && a.label.startsWith('huge'))), JSON.stringify(tokenRun.byStatus));
  assert.equal(statusOf['expired → subscribe'], 401);
  assert.equal(statusOf['bound to another topic → event'], 403);
  assert.equal(statusOf['no fhircast scope → get context'], 403);
  assert.deepEqual(bodyRun.broken, [], 'with a valid token, every hostile body is a 4xx (or a still-valid mutation)');
  assert.ok(total >= 750 * SCALE, `${total} requests`);
  assert.equal(t.live.ws.readyState, WebSocket.OPEN);
  assert.equal((await jwtHub.unsubscribe(t.liveEndpoint, { topic: t.topic, token })).status, 202, 'no bad token unsubscribed the live subscriber');
  await normalFlow(jwtHub, token);
  t.foreign.ws.close();
});

test('neg24 req70 (hostile WebSocket messages): over 3,600 hostile messages on a live socket are ignored; its real acks still count and nothing else is sent', async () => {
  const topic = uid();
  const watcher = await openHub.join('Patient-open,SyncError', { topic, name: 'Watcher' });
  const target = await openHub.join('Patient-open', { topic, name: 'Target', ack: false });
  const ev = openHub.event('Patient-open', [patient('p1')], { topic });
  assert.equal((await openHub.post(ev)).status, 202);
  await target.nextEvent('Patient-open');
  await watcher.nextEvent('Patient-open');
  const rnd = prng(24);
  const mutate = mutator(rnd);
  const templates = [JSON.stringify({ id: 'not-pending', status: 409 }), JSON.stringify({ id: ev.id.slice(0, -1), status: 500 }), '{"id":"x","status":"200"}', JSON.stringify(ev)];
  const messages = [];
  for (let i = 0; i < 900 * SCALE; i++) messages.push(mutate(templates[i % templates.length]).toString());
  for (const v of [null, 0, true, [], {}, '', 'x'.repeat(500), 99999, -200, 1.5, '409 ']) messages.push(JSON.stringify({ id: 'unknown', status: v }), JSON.stringify({ id: v, status: 409 }));
  for (let i = 0; i < 40; i++) messages.push(JSON.stringify({ id: `forged-${i}`, status: 500 }));
  for (const big of [70_000, 200_000]) messages.push(JSON.stringify({ id: ev.id, status: 409, pad: 'p'.repeat(big) })); // over MAX_MESSAGE_BYTES: not read
  for (const status of [409, 500, '409']) messages.push(JSON.stringify({ id: ev.id, status })); // already answered: ignored
  // The real answer goes first (so a busy machine cannot make it late), then the hostile
  // messages — among them refusals of the same id, which must not count once it is answered.
  target.send({ id: ev.id, status: 200 });
  for (const m of messages) target.ws.send(m);
  for (let i = 0; i < 20; i++) target.ws.send(Buffer.from(Array.from({ length: 64 }, () => Math.floor(rnd() * 256))), { binary: true });
  target.ws.ping();
  const sentCount = messages.length + 21;
  // Past the (default, 10 s) ack timeout: had the real answer not counted, a SyncError would come.
  assert.ok(await watcher.nothing((m) => m.event?.['hub.event'] === 'SyncError', 10_800), 'no SyncError: nothing hostile counted as an answer, the real ack did');
  assert.equal(target.ws.readyState, WebSocket.OPEN, 'the socket is still open');
  const ev2 = openHub.event('Patient-open', [patient('p2')], { topic });
  assert.equal((await openHub.post(ev2)).status, 202);
  assert.equal((await target.nextEvent('Patient-open')).id, ev2.id, 'and still receives');
  target.send({ id: ev2.id, status: 200 });
  assert.deepEqual(target.all.filter((m) => !m.event && m['hub.mode'] !== 'subscribe'), [], 'nothing but notifications was sent to it');
  console.log(`hostile WebSocket messages: ${sentCount} sent (text, binary, oversized, ping), all ignored`);
  assert.ok(sentCount >= 900 * SCALE, `${sentCount} messages`);
  watcher.ws.close();
  target.ws.close();
});
