// Authorization (req 16-23, neg 4, 5, 9, 13, §5a-8) against the hub running in workerd with
// AUTH_MODE=jwt. Keys are generated here with node:crypto and the tokens signed here (RS256,
// ES256, HS256); the hub verifies them with WebCrypto. Public keys are given inline
// (JWT_PUBLIC_KEYS) and, for a second hub, served as a JWKS over HTTP (JWT_JWKS_URL).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import WebSocket from 'ws';
import { startHub, Subscriber, patient, uid } from './harness.mjs';
import { ISSUER, AUDIENCE, SECRET, rsa, ec, otherRsa, otherEc, JWKS, now, b64, jwt } from './tokens.mjs';

let hub;
let jwksHub;
let brokenJwksHub;
let boundHub;
let rotationHub;
let jwksServer;
let jwksHits = 0;
/** What the identity provider serves at /jwks.json (a test rotates keys by changing it). */
let served = JWKS;

before(async () => {
  jwksServer = createServer((req, res) => {
    if (req.url === '/jwks.json') {
      jwksHits++;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(served));
    } else {
      res.writeHead(500, { 'content-type': 'text/plain' });
      res.end('identity provider down');
    }
  });
  await new Promise((r) => jwksServer.listen(0, '127.0.0.1', r));
  const jwksBase = `http://127.0.0.1:${jwksServer.address().port}`;
  const common = { AUTH_MODE: 'jwt', JWT_ISSUER: ISSUER, JWT_AUDIENCE: AUDIENCE };
  [hub, jwksHub, brokenJwksHub] = await Promise.all([
    startHub({ bindings: { ...common, JWT_PUBLIC_KEYS: JSON.stringify(JWKS), JWT_HS256_SECRET: SECRET } }),
    startHub({ bindings: { ...common, JWT_JWKS_URL: `${jwksBase}/jwks.json` } }),
    startHub({ bindings: { ...common, JWT_JWKS_URL: `${jwksBase}/broken` } }),
    startHub({ bindings: { ...common, JWT_PUBLIC_KEYS: JSON.stringify(JWKS), REQUIRE_TOPIC_BINDING: 'true' } }),
    // Its own workerd process, so its JWKS cache and refetch budget are its own.
    startHub({ bindings: { ...common, JWT_JWKS_URL: `${jwksBase}/jwks.json` } }),
  ]).then(([a, b, c, d, e]) => ((boundHub = d), (rotationHub = e), [a, b, c]));
});
after(async () => {
  await Promise.all([hub, jwksHub, brokenJwksHub, boundHub, rotationHub].map((h) => h?.stop()));
  jwksServer?.close();
});

/** A 401 for the token: WWW-Authenticate, and the message in the right shape (§5a-5). */
function unauthorized(r, message, { outcome = false } = {}) {
  assert.equal(r.status, 401, r.text);
  assert.match(r.headers.get('www-authenticate') ?? '', /^Bearer\b/, 'RFC 6750: WWW-Authenticate on a 401');
  if (outcome) {
    assert.match(r.headers.get('content-type'), /^application\/fhir\+json/);
    assert.equal(r.json.resourceType, 'OperationOutcome');
    assert.equal(r.json.issue[0].code, 'login');
    assert.match(r.json.issue[0].diagnostics, message);
  } else {
    assert.match(r.headers.get('content-type'), /^text\/plain/);
    assert.match(r.text, message);
  }
}

/** A 403 for what the token allows. */
function forbidden(r, message, { outcome = false } = {}) {
  assert.equal(r.status, 403, r.text);
  if (outcome) {
    assert.match(r.headers.get('content-type'), /^application\/fhir\+json/);
    assert.equal(r.json.issue[0].code, 'forbidden');
    assert.match(r.json.issue[0].diagnostics, message);
  } else {
    assert.match(r.headers.get('content-type'), /^text\/plain/);
    assert.match(r.text, message);
  }
}

const subscribeWith = (token, { topic = hub.topic, events = 'Patient-open' } = {}) => hub.subscribe({ topic, events, token });
const postBoth = async (body, token, topic = body.event['hub.topic']) => [await hub.post(body, { token }), await hub.post(body, { token, path: `/${topic}` })];

test('neg9 req19 req23: without a bearer token every request is 401 with WWW-Authenticate and a clear message', async () => {
  const missing = /an access token is required: send Authorization: Bearer <token>/;
  unauthorized(await hub.subscribe({ events: 'Patient-open' }), missing);
  unauthorized(await hub.subscribeForm({ 'hub.channel.type': 'websocket', 'hub.mode': 'subscribe', 'hub.topic': hub.topic, 'hub.events': 'Patient-open' }, { headers: { authorization: 'Basic dXNlcjpwYXNz' } }), missing);
  unauthorized(await hub.subscribeForm('hub.channel.type=websocket&hub.mode=subscribe&hub.topic=T&hub.events=Patient-open', { headers: { authorization: 'Bearer ' } }), missing);
  unauthorized(await hub.unsubscribe('wss://hub.example/api/hub/ws/T/x'), missing);
  for (const r of await postBoth(hub.event('Patient-open', [patient('p1')]))) unauthorized(r, missing, { outcome: true });
  unauthorized(await hub.getContext(), missing, { outcome: true });
});

test('neg9: a malformed token is 401 saying what is wrong with it', async () => {
  const [h, p, s] = jwt().split('.');
  const cases = [
    ['abc', /expected three dot-separated parts/],
    ['a.b', /expected three dot-separated parts/],
    [`${h}.${p}.${s}.x`, /expected three dot-separated parts/],
    [`!!.${p}.${s}`, /header is not base64url/],
    [`${b64({ typ: 'JWT' })}.${p}.${s}`, /header is not a JSON object with "alg"/],
    [`${h}.${b64('not json')}.${s}`, /payload is not JSON/],
    [`${h}.${b64([1, 2])}.${s}`, /payload is not a JSON object/],
    [`${h}.${p}.+/=`, /signature is not base64url/],
  ];
  for (const [token, message] of cases) {
    unauthorized(await subscribeWith(token), new RegExp(`the access token is not a well-formed JWT: ${message.source}`));
  }
});

test('neg9: alg none (and any alg but RS256, ES256, HS256) is 401', async () => {
  const none = jwt({}, { alg: 'none' });
  unauthorized(await subscribeWith(none), /algorithm "none" is not accepted; use RS256, ES256 or HS256/);
  unauthorized((await postBoth(hub.event('Patient-open', [patient('p1')]), none))[1], /algorithm "none"/, { outcome: true });
  const rs512 = jwt({}, { header: { alg: 'RS512' } });
  unauthorized(await subscribeWith(rs512), /algorithm "RS512" is not accepted/);
});

test('neg9 req20: an expired token (beyond the 60 s leeway) or one without exp is 401; within the leeway an event passes', async () => {
  unauthorized(await subscribeWith(jwt({ exp: now() - 120 })), /the access token has expired or has no "exp"/);
  unauthorized(await subscribeWith(jwt({ exp: undefined })), /has expired or has no "exp"/);
  unauthorized((await postBoth(hub.event('Patient-open', [patient('p1')]), jwt({ exp: now() - 120 })))[0], /has expired/, { outcome: true });
  // Clock skew: 30 s past exp is still a valid token for an event ...
  const skewed = jwt({ exp: now() - 30 });
  const topic = uid();
  assert.equal((await hub.post(hub.event('Patient-open', [patient('p1')], { topic }), { token: skewed })).status, 202);
  // ... but no lease can end before the token does (req 20): a subscription is refused.
  unauthorized(await subscribeWith(skewed, { topic }), /the access token has expired \(req 20, neg 9\)/);
});

test('neg9: a token not valid yet (nbf in the future, beyond the leeway) is 401', async () => {
  unauthorized(await subscribeWith(jwt({ nbf: now() + 300 })), /the access token is not valid yet \("nbf"\)/);
  assert.equal((await subscribeWith(jwt({ nbf: now() + 30 }))).status, 202, 'within the 60 s leeway');
});

test('neg9 req20: NumericDates with a fraction are dates: a fractional exp is valid, a fractional nbf in the future is refused (issue 13)', async () => {
  assert.equal((await subscribeWith(jwt({ exp: now() + 300.5 }))).status, 202, 'a fractional exp is a valid token');
  unauthorized(await subscribeWith(jwt({ nbf: now() + 300.25 })), /the access token is not valid yet \("nbf"\)/);
  unauthorized(await subscribeWith(jwt({ nbf: 'later' })), /"nbf" is not a number/);
});

test('neg9: a hub.topic claim that is not a string is refused, never taken as unbound (issue 13)', async () => {
  for (const bad of [['T1'], 7, { id: 'T1' }, true]) {
    unauthorized(await subscribeWith(jwt({ 'hub.topic': bad })), /the "hub\.topic" claim is not a string/);
  }
  unauthorized((await postBoth(hub.event('Patient-open', [patient('p1')]), jwt({ 'hub.topic': ['x'] })))[0], /hub\.topic/, { outcome: true });
});

test('neg9: a wrong or missing issuer is 401 naming it', async () => {
  unauthorized(await subscribeWith(jwt({ iss: 'https://evil.example' })), /the access token's issuer "https:\/\/evil\.example" is not the one this hub trusts/);
  unauthorized(await subscribeWith(jwt({ iss: undefined })), /issuer "" is not the one this hub trusts/);
});

test('neg9: a wrong audience is 401; an audience array naming the hub is accepted', async () => {
  unauthorized(await subscribeWith(jwt({ aud: 'https://other-hub.example' })), /the access token's audience does not include this hub/);
  unauthorized(await subscribeWith(jwt({ aud: undefined })), /audience does not include this hub/);
  unauthorized(await subscribeWith(jwt({ aud: ['https://a.example', 'https://b.example'] })), /audience/);
  assert.equal((await subscribeWith(jwt({ aud: ['https://fhir.example', AUDIENCE] }))).status, 202);
});

test('neg9: a bad signature is 401 (tampered claims, another key, another secret)', async () => {
  const bad = /the access token's signature does not verify/;
  const [h, , s] = jwt({ scope: 'fhircast/Patient-open.read' }).split('.');
  const elevated = `${h}.${b64({ iss: ISSUER, aud: AUDIENCE, exp: now() + 300, scope: 'fhircast/*.*' })}.${s}`;
  unauthorized(await subscribeWith(elevated), bad);
  unauthorized(await subscribeWith(jwt({}, { alg: 'RS256', key: otherRsa.privateKey })), bad);
  unauthorized(await subscribeWith(jwt({}, { alg: 'ES256', key: otherEc.privateKey })), bad);
  unauthorized(await subscribeWith(jwt({}, { alg: 'HS256', key: 'not the secret' })), bad);
  unauthorized(await subscribeWith(jwt({}, { alg: 'ES256', kid: 'ec-1', key: undefined }).replace(/\.[^.]+$/, `.${b64('x'.repeat(64))}`)), bad);
  unauthorized((await postBoth(hub.event('Patient-open', [patient('p1')]), elevated))[1], bad, { outcome: true });
});

test('neg9: a token whose kid names no configured key is 401 naming the kid', async () => {
  unauthorized(await subscribeWith(jwt({}, { kid: 'rotated-away' })), /no key is configured that can verify this access token \(kid "rotated-away"\)/);
  // An RS256 token naming the EC key's kid: no RSA key has that kid.
  unauthorized(await subscribeWith(jwt({}, { alg: 'RS256', kid: 'ec-1' })), /no key is configured that can verify this access token/);
});

test('req18 neg9: subscribing without a fhircast read scope for any requested event is 403 naming the scope needed', async () => {
  const needs = /the access token grants none of the requested events; it needs a scope such as fhircast\/Patient-open\.read/;
  forbidden(await subscribeWith(jwt({ scope: 'openid fhircast/Patient-close.read' })), needs);
  forbidden(await subscribeWith(jwt({ scope: 'fhircast/Patient-open.write' })), needs); // write does not grant read
  forbidden(await subscribeWith(jwt({ scope: undefined })), needs);
  forbidden(await subscribeWith(jwt({ scope: 'patient/*.read launch' })), needs);
});

test('neg5 req18 req45: a token allowing some of the requested events gets that subset, listed in the confirmation', async () => {
  const topic = uid();
  const reader = jwt({ scope: 'fhircast/patient-OPEN.read fhircast/SyncError.read', 'hub.topic': topic });
  const r = await hub.subscribe({ topic, events: 'Patient-open,Patient-close,SyncError', token: reader });
  assert.equal(r.status, 202, r.text);
  const s = await Subscriber.connect(r.json['hub.channel.endpoint']);
  hub.sockets.add(s.ws);
  const confirmation = await s.next();
  assert.equal(confirmation['hub.events'], 'Patient-open,SyncError');
  const writer = jwt({ scope: 'fhircast/*.write' });
  assert.equal((await hub.post(hub.event('Patient-open', [patient('p1')], { topic }), { token: writer })).status, 202);
  assert.equal((await hub.post(hub.event('Patient-close', [patient('p1')], { topic }), { token: writer })).status, 202);
  await s.nextEvent('Patient-open');
  assert.ok(await s.nothing((m) => m.event?.['hub.event'] === 'Patient-close', 400), 'no event beyond the granted scopes');
  s.ws.close();
});

test('neg13 req17: an event without the write scope for it is 403 naming the scope, on both event URLs', async () => {
  const topic = uid();
  const ev = hub.event('Patient-open', [patient('p1')], { topic });
  for (const scope of ['fhircast/*.read', 'fhircast/Patient-close.write', 'fhircast/Patient-open.read']) {
    for (const r of await postBoth(ev, jwt({ scope }))) forbidden(r, /the access token lacks the scope fhircast\/Patient-open\.write/, { outcome: true });
  }
  assert.equal((await hub.post(ev, { token: jwt({ scope: 'fhircast/Patient-open.write' }) })).status, 202);
  assert.equal((await hub.post(hub.event('Patient-close', [patient('p1')], { topic }), { token: jwt({ scope: 'fhircast/*.write' }) })).status, 202);
});

test('neg4 neg13: a token bound to another topic (claim hub.topic) is 403 for subscribe, events and get current context', async () => {
  const topic = uid();
  const bound = jwt({ 'hub.topic': 'another-session' });
  forbidden(await subscribeWith(bound, { topic }), /the access token is bound to another topic than ".*" \(neg 4\)/);
  for (const r of await postBoth(hub.event('Patient-open', [patient('p1')], { topic }), bound)) forbidden(r, /the access token is bound to another topic/, { outcome: true });
  forbidden(await hub.getContext(topic, { token: bound }), /bound to another topic/, { outcome: true });
  // Bound to this topic: allowed.
  const mine = jwt({ 'hub.topic': topic });
  assert.equal((await subscribeWith(mine, { topic })).status, 202);
  assert.equal((await hub.post(hub.event('Patient-open', [patient('p1')], { topic }), { token: mine })).status, 202);
  assert.equal((await hub.getContext(topic, { token: mine })).status, 200);
});

test('neg4 neg13: get current context of a topic nobody has used checks the token\'s binding too: 403 for another topic, so a bound token cannot tell which topics exist (issue 13)', async () => {
  const unused = uid();
  forbidden(await hub.getContext(unused, { token: jwt({ 'hub.topic': 'another-session' }) }), /bound to another topic/, { outcome: true });
  const r = await hub.getContext(unused, { token: jwt({ 'hub.topic': unused }) });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json, { 'context.type': '', context: [] });
});

test('req20 neg8: the lease is clamped to end no later than the token', async () => {
  const topic = uid();
  const exp = now() + 120;
  const s = await hub.join('Patient-open', { topic, lease: 3600, token: jwt({ exp }) });
  const lease = s.confirmation['hub.lease_seconds'];
  assert.ok(lease <= exp - now() + 1 && lease >= 110, `lease ${lease} <= ${exp - now()}`);
  s.ws.close();
  // A lease shorter than the token is kept.
  const t = await hub.join('Patient-open', { topic, lease: 60, token: jwt({ exp: now() + 3000 }) });
  assert.equal(t.confirmation['hub.lease_seconds'], 60);
  t.ws.close();
});

/** Subscribe with a token, connect without one (req 22), post with a token, receive. */
async function endToEnd(h, alg, extra = {}) {
  const topic = uid();
  const token = jwt({ 'hub.topic': topic, ...extra }, { alg });
  const a = await h.join('Patient-open,Patient-close', { topic, token, name: `${alg} app` });
  assert.equal(a.confirmation['hub.events'], 'Patient-open,Patient-close');
  const ev = h.event('Patient-open', [patient('p1')], { topic });
  const posted = await h.post(ev, { token });
  assert.equal(posted.status, 202, posted.text);
  const got = await a.nextEvent('Patient-open');
  assert.equal(got.id, ev.id);
  const close = h.event('Patient-close', [patient('p1')], { topic });
  assert.equal((await h.post(close, { token, path: `/${topic}` })).status, 202);
  assert.equal((await a.nextEvent('Patient-close')).id, close.id);
  const un = await h.unsubscribe(a.endpoint, { topic, token });
  assert.equal(un.status, 202, un.text);
  assert.equal((await a.next((m) => m['hub.mode'] === 'denied'))['hub.mode'], 'denied');
}

test('req19 req22: an RS256 token works end to end; the WebSocket endpoint needs no token', async () => endToEnd(hub, 'RS256'));
test('req19 req22: an ES256 token works end to end', async () => endToEnd(hub, 'ES256'));
test('req19 req22 req16: an HS256 token with scopes in an scp array works end to end', async () =>
  endToEnd(hub, 'HS256', { scope: undefined, scp: ['fhircast/Patient-open.read', 'fhircast/Patient-open.write', 'fhircast/Patient-close.read', 'fhircast/Patient-close.write'] }));

test('§5a-8 req18: get current context needs a token with the read scope of the current open event', async () => {
  const topic = uid();
  unauthorized(await hub.getContext(topic), /an access token is required/, { outcome: true });
  // No context yet: any valid token reads the empty context.
  const empty = await hub.getContext(topic, { token: jwt({ scope: 'fhircast/Patient-close.read' }) });
  assert.equal(empty.status, 200);
  assert.deepEqual(empty.json, { 'context.type': '', context: [] });
  assert.equal((await hub.post(hub.event('Patient-open', [patient('p1')], { topic }), { token: jwt() })).status, 202);
  forbidden(await hub.getContext(topic, { token: jwt({ scope: 'fhircast/Patient-close.read fhircast/*.write' }) }), /lacks the scope fhircast\/Patient-open\.read needed to read the current context/, { outcome: true });
  const ok = await hub.getContext(topic, { token: jwt({ scope: 'fhircast/Patient-open.read' }) });
  assert.equal(ok.status, 200);
  assert.equal(ok.json['context.type'], 'Patient');
  assert.equal(ok.json.context[0].resource.id, 'p1');
});

test('§5a-8 req18 req97: with mixed grants, get current context gives a Patient-only token the patient the current report implies, never the report', async () => {
  const topic = uid();
  const ehr = await hub.join('Patient-open', { topic, token: jwt({ scope: 'fhircast/Patient-open.read' }) });
  const rep = { key: 'report', resource: { resourceType: 'DiagnosticReport', id: 'r1', status: 'final' } };
  assert.equal((await hub.post(hub.event('DiagnosticReport-open', [rep, patient('p1')], { topic }), { token: jwt() })).status, 202);
  const derived = await ehr.nextEvent('Patient-open');
  const patientOnly = await hub.getContext(topic, { token: jwt({ scope: 'fhircast/Patient-open.read' }) });
  assert.equal(patientOnly.status, 200, patientOnly.text);
  assert.deepEqual(patientOnly.json.context.slice(0, -1), derived.event.context, 'exactly what its subscription was sent (req 97)');
  assert.equal(patientOnly.json['context.type'], 'Patient');
  assert.equal(patientOnly.json['context.versionId'], derived.event['context.versionId']);
  assert.doesNotMatch(patientOnly.text, /DiagnosticReport/, 'req 18: nothing the token may not read');
  const full = await hub.getContext(topic, { token: jwt({ scope: 'fhircast/DiagnosticReport-open.read' }) });
  assert.equal(full.json['context.type'], 'DiagnosticReport');
  forbidden(await hub.getContext(topic, { token: jwt({ scope: 'fhircast/Encounter-open.read' }) }), /fhircast\/DiagnosticReport-open\.read/, { outcome: true });
  ehr.ws.close();
});

test('req22: the WebSocket endpoint is the ticket: it connects without a token, and a token does not replace it', async () => {
  const topic = uid();
  const r = await hub.subscribe({ topic, events: 'Patient-open', token: jwt() });
  const s = await Subscriber.connect(r.json['hub.channel.endpoint']);
  hub.sockets.add(s.ws);
  assert.equal((await s.next())['hub.mode'], 'subscribe');
  s.ws.close();
  // A made-up endpoint is refused even with a valid token in the URL's place of honour.
  await assert.rejects(Subscriber.connect(`${hub.origin.replace('http', 'ws')}/api/hub/ws/${topic}/${'00'.repeat(24)}`), (e) => e.status === 404);
});

test('neg9 JWT_JWKS_URL: keys fetched over HTTP from the identity provider verify RS256 and ES256 tokens, and are cached', async () => {
  for (const alg of ['RS256', 'ES256']) {
    const r = await jwksHub.subscribe({ events: 'Patient-open', token: jwt({}, { alg }) });
    assert.equal(r.status, 202, r.text);
  }
  const before = jwksHits;
  assert.ok(before >= 1, 'the hub fetched the JWKS from 127.0.0.1');
  for (let i = 0; i < 3; i++) assert.equal((await jwksHub.subscribe({ events: 'Patient-open', token: jwt() })).status, 202);
  assert.equal(jwksHits, before, 'the JWKS is cached, not fetched per request');
  const r = await jwksHub.subscribe({ events: 'Patient-open', token: jwt({}, { kid: 'unknown-kid' }) });
  unauthorized(r, /no key is configured that can verify this access token/);
  const forged = await jwksHub.subscribe({ events: 'Patient-open', token: jwt({}, { key: otherRsa.privateKey }) });
  unauthorized(forged, /signature does not verify/);
  // HS256 is not configured on this hub: no key.
  unauthorized(await jwksHub.subscribe({ events: 'Patient-open', token: jwt({}, { alg: 'HS256' }) }), /no key is configured/);
});

test('neg9 issue13: when the JWKS cannot be fetched the hub says so with 503 (its problem, not the token\'s), without the identity provider\'s answer', async () => {
  const r = await brokenJwksHub.subscribe({ events: 'Patient-open', token: jwt() });
  assert.equal(r.status, 503, r.text);
  assert.match(r.text, /the hub cannot read its verification keys right now; try again later/);
  assert.doesNotMatch(r.text, /500|identity provider down|JWKS URL|127\.0\.0\.1/, 'internal details stay in the log');
  assert.match(r.headers.get('x-request-id') ?? '', /^[0-9a-f]{16}$/, 'the answer carries the request id the log names');
  assert.equal(r.headers.get('www-authenticate'), null);
});

test('issue13: a token signed with a key the identity provider just rotated in is accepted (the JWKS is fetched again for an unknown kid, at most every 30 s)', async () => {
  assert.equal((await rotationHub.subscribe({ events: 'Patient-open', token: jwt() })).status, 202);
  const rotated = { ...otherRsa.publicKey.export({ format: 'jwk' }), kid: 'rsa-2', use: 'sig', alg: 'RS256' };
  served = { keys: [...JWKS.keys, rotated] };
  try {
    const before = jwksHits;
    const r = await rotationHub.subscribe({ events: 'Patient-open', token: jwt({}, { kid: 'rsa-2', key: otherRsa.privateKey }) });
    assert.equal(r.status, 202, `the new key verifies at once: ${r.text}`);
    assert.equal(jwksHits, before + 1, 'one fetch for the unknown kid');
    for (let i = 0; i < 3; i++) {
      unauthorized(await rotationHub.subscribe({ events: 'Patient-open', token: jwt({}, { kid: `made-up-${i}` }) }), /no key is configured/);
    }
    assert.equal(jwksHits, before + 1, 'made-up kids do not make the hub fetch again within 30 s');
  } finally {
    served = JWKS;
  }
});

test('roster: GET {topic}/subscribers needs a token for this topic that may read SyncError', async () => {
  const topic = uid('topic');
  const path = `/${topic}/subscribers`;
  unauthorized(await hub.request(path), /an access token is required/, { outcome: true });
  const bearer = (token) => ({ headers: { authorization: `Bearer ${token}` } });
  forbidden(await hub.request(path, bearer(jwt({ scope: 'fhircast/Patient-open.read' }))), /lacks the scope fhircast\/SyncError\.read needed to read the topic's subscribers/, { outcome: true });
  forbidden(await hub.request(path, bearer(jwt({ 'hub.topic': 'another' }))), /bound to another topic/, { outcome: true });
  const ok = await hub.request(path, bearer(jwt({ scope: 'fhircast/SyncError.read', 'hub.topic': topic })));
  assert.equal(ok.status, 200, ok.text);
  assert.deepEqual(ok.json, { 'hub.topic': topic, subscribers: [] });
});

test('issue13 REQUIRE_TOPIC_BINDING: a token without a hub.topic claim is refused (401) on every route; a token bound to the topic is accepted', async () => {
  const topic = uid('topic');
  const unbound = jwt();
  unauthorized(await boundHub.subscribe({ topic, events: 'Patient-open', token: unbound }), /only access tokens bound to a topic/);
  unauthorized(await boundHub.post(boundHub.event('Patient-open', [patient('p1')], { topic }), { token: unbound }), /bound to a topic/, { outcome: true });
  unauthorized(await boundHub.getContext(topic, { token: unbound }), /bound to a topic/, { outcome: true });
  const bound = jwt({ 'hub.topic': topic });
  assert.equal((await boundHub.subscribe({ topic, events: 'Patient-open', token: bound })).status, 202);
  assert.equal((await boundHub.post(boundHub.event('Patient-open', [patient('p1')], { topic }), { token: bound })).status, 202);
  // The default (off): the same unbound token may use any topic it can name.
  assert.equal((await hub.subscribe({ topic, events: 'Patient-open', token: unbound })).status, 202);
});

test('req20 issue13: the lease ends when the token does, even when the WebSocket connects late', async () => {
  const topic = uid('topic');
  const t0 = Date.now();
  const r = await hub.subscribe({ topic, events: 'Patient-open', lease: 3600, token: jwt({ exp: now() + 6 }) });
  assert.equal(r.status, 202, r.text);
  await sleep(3000);
  const s = await Subscriber.connect(r.json['hub.channel.endpoint']);
  const confirmation = await s.next();
  assert.ok(confirmation['hub.lease_seconds'] <= 4, `the confirmation grants what is left of the token: ${JSON.stringify(confirmation)}`);
  const denial = await s.next((m) => m['hub.mode'] === 'denied', 10_000);
  const at = (Date.now() - t0) / 1000;
  // Counted from the connect, the 6 s lease would end 9 s after subscribing.
  assert.ok(at < 8.5, `denied ${at.toFixed(1)} s after subscribing, when the token expired (~6-7 s)`);
  assert.match(denial['hub.reason'] ?? '', /lease expired/);
});

test('issue13: headers a client sends that look like the hub\'s internal ones change nothing', async () => {
  const topic = uid('topic');
  const readOnly = jwt({ scope: 'fhircast/Patient-open.read', 'hub.topic': topic });
  const spoof = { 'x-fhircast-auth': '{}', 'x-fhircast-topic': 'another', 'x-fhircast-request-id': 'x' };
  const r = await hub.request('', {
    method: 'POST',
    headers: { 'content-type': 'application/fhir+json', authorization: `Bearer ${readOnly}`, ...spoof },
    body: JSON.stringify(hub.event('Patient-open', [patient('p1')], { topic })),
  });
  forbidden(r, /fhircast\/Patient-open\.write/, { outcome: true });
  // The WebSocket upgrade: the object gets none of the client's headers (built from scratch).
  const sub = await hub.subscribe({ topic, events: 'Patient-open', token: readOnly });
  const ws = new WebSocket(sub.json['hub.channel.endpoint'], { headers: spoof });
  const first = await new Promise((resolve, reject) => {
    ws.once('message', (d) => resolve(JSON.parse(d.toString())));
    ws.once('error', reject);
  });
  assert.equal(first['hub.mode'], 'subscribe');
  assert.equal(first['hub.topic'], topic);
  ws.close();
});
