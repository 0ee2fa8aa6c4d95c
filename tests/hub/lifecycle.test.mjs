// The life of a subscription against the hub in workerd: unsubscribe, single-use endpoints, lease
// expiry, unconnected endpoints, unresponsive subscribers, heartbeat and ping/pong. Short
// timeouts: ACK_TIMEOUT_SECONDS=2, CONNECT_TIMEOUT_SECONDS=2.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startHub, patient, syncErrorDetails, uid } from './harness.mjs';
import { closeFrame, rawSocket, upgradeRefusal, sleep } from './wsutil.mjs';

let hub;
before(async () => (hub = await startHub({ bindings: { ACK_TIMEOUT_SECONDS: '2', CONNECT_TIMEOUT_SECONDS: '2' } })));
after(async () => hub?.stop());

const isSyncError = (m) => m.event?.['hub.event'] === 'SyncError';

test('req47 req53 req54 req46 neg11: unsubscribe answers 202 with the endpoint, sends a denial, closes the socket; the endpoint is never reusable', async () => {
  const topic = uid();
  const a = await hub.join('Patient-open,Patient-close', { topic, name: 'A' });
  const r = await hub.unsubscribe(a.endpoint, { topic });
  assert.equal(r.status, 202, r.text);
  assert.match(r.headers.get('content-type'), /^application\/json/);
  assert.deepEqual(r.json, { 'hub.channel.endpoint': a.endpoint });
  assert.deepEqual(await a.next(), { 'hub.mode': 'denied', 'hub.topic': topic, 'hub.events': 'Patient-open,Patient-close', 'hub.reason': 'unsubscribed' });
  assert.equal((await closeFrame(a)).code, 1000);
  const refused = await upgradeRefusal(a.endpoint);
  assert.equal(refused.status, 404, 'neg 11: the endpoint is gone');
  assert.match(refused.body, /unknown, expired or unsubscribed/);
  const resub = await hub.subscribe({ topic, events: 'Patient-open', endpoint: a.endpoint });
  assert.equal(resub.status, 404, 'req 54: a later subscription needs a new endpoint');
  assert.match(resub.headers.get('content-type'), /^text\/plain/);
  assert.equal((await hub.unsubscribe(a.endpoint, { topic })).status, 404);
  const fresh = await hub.subscribe({ topic, events: 'Patient-open' });
  assert.notEqual(fresh.json['hub.channel.endpoint'], a.endpoint);
});

test('req50 req51 req55: an unsubscribe only cancels (hub.events ignored); a trailing newline on the endpoint is trimmed', async () => {
  const topic = uid();
  const a = await hub.join('Patient-open', { topic });
  const r = await hub.subscribeForm({ 'hub.channel.type': 'websocket', 'hub.mode': 'unsubscribe', 'hub.topic': topic, 'hub.channel.endpoint': `${a.endpoint}\n`, 'hub.events': 'Patient-close' });
  assert.equal(r.status, 202, r.text);
  assert.equal((await a.next())['hub.mode'], 'denied');
  await closeFrame(a);
});

test('req52 req38 req39 neg10 5a-5: an unsubscribe without an endpoint, or with an unknown one, is refused with a plain-text reason', async () => {
  const topic = uid();
  const missing = await hub.subscribeForm({ 'hub.channel.type': 'websocket', 'hub.mode': 'unsubscribe', 'hub.topic': topic });
  assert.equal(missing.status, 400, missing.text);
  assert.match(missing.headers.get('content-type'), /^text\/plain/);
  assert.ok(missing.text.length > 10);
  await hub.subscribe({ topic, events: 'Patient-open' });
  const unknown = await hub.unsubscribe(`ws://127.0.0.1/api/hub/ws/${topic}/${'0'.repeat(48)}`, { topic });
  assert.equal(unknown.status, 404, unknown.text);
});

test('neg11 req41: a second WebSocket on a connected endpoint is refused (403); the first one keeps working', async () => {
  const topic = uid();
  const a = await hub.join('Patient-open', { topic });
  const second = await upgradeRefusal(a.endpoint);
  assert.equal(second.status, 403);
  assert.match(second.body, /single-use/);
  const ev = hub.event('Patient-open', [patient('p1')], { topic });
  await hub.post(ev);
  assert.equal((await a.nextEvent('Patient-open')).id, ev.id);
  await a.close();
});

test('req56 neg27 req46 req43: when the lease runs out the hub sends a denial and closes the socket', async () => {
  const topic = uid();
  const t0 = Date.now();
  const a = await hub.join('Patient-open', { topic, name: 'A', lease: 2 });
  assert.equal(a.confirmation['hub.lease_seconds'], 2);
  const denial = await a.next((m) => m['hub.mode'] === 'denied', 5000);
  const elapsed = Date.now() - t0;
  assert.ok(elapsed >= 1800 && elapsed < 4500, `denied after ${elapsed} ms`);
  assert.deepEqual(denial, { 'hub.mode': 'denied', 'hub.topic': topic, 'hub.events': 'Patient-open', 'hub.reason': 'lease expired' });
  assert.equal((await closeFrame(a)).code, 1000);
  assert.equal((await upgradeRefusal(a.endpoint)).status, 404);
  assert.equal((await hub.subscribe({ topic, events: 'Patient-open', endpoint: a.endpoint })).status, 404, 'unsubscribed');
});

test('5a-3: an issued endpoint waits CONNECT_TIMEOUT_SECONDS for its WebSocket, then expires silently', async () => {
  const topic = uid();
  const late = await hub.subscribe({ topic, events: 'Patient-open' });
  const inTime = await hub.subscribe({ topic, events: 'Patient-open' });
  await sleep(1000);
  const s = await rawSocket(inTime.json['hub.channel.endpoint']);
  await sleep(1900);
  assert.equal((await upgradeRefusal(late.json['hub.channel.endpoint'])).status, 404, 'not connected within 2 s: expired');
  assert.equal(s.readyState, 1, 'a connected subscription is not affected');
  assert.equal(JSON.parse(s.texts[0])['hub.mode'], 'subscribe');
  s.close(1000);
});

test('req87 req85 5a-14: one unanswered notification (live or replayed) → SyncError to the others after ACK_TIMEOUT_SECONDS, then denial and close (N = 1)', async () => {
  const topic = uid();
  const b = await hub.join('SyncError', { topic, name: 'B' });
  const silent = await hub.join('Patient-open', { topic, name: 'Silent', ack: false });
  const ev = hub.event('Patient-open', [patient('p1')], { topic });
  const t0 = Date.now();
  await hub.post(ev);
  const se = syncErrorDetails(await b.next(isSyncError, 5000));
  const elapsed = Date.now() - t0;
  assert.ok(elapsed >= 1800 && elapsed < 4500, `SyncError after ${elapsed} ms`);
  assert.equal(se.subscriber, 'Silent');
  assert.equal(se.eventId, ev.id);
  assert.equal(se.diagnostics, 'Silent did not answer Patient-open within 2 s');
  assert.deepEqual(await silent.next((m) => m['hub.mode']), { 'hub.mode': 'denied', 'hub.topic': topic, 'hub.events': 'Patient-open', 'hub.reason': 'unresponsive: no answer within 2 s' });
  assert.equal((await closeFrame(silent)).code, 1000);
  // A replayed open is a notification like any other: it must be answered too.
  const late = await hub.join('Patient-open', { topic, name: 'LateSilent', ack: false });
  assert.equal((await late.nextEvent('Patient-open')).id, ev.id);
  const se2 = syncErrorDetails(await b.next(isSyncError, 5000));
  assert.equal(se2.subscriber, 'LateSilent');
  assert.equal(se2.eventId, ev.id);
  assert.equal((await late.next((m) => m['hub.mode']))['hub.mode'], 'denied');
  await closeFrame(late);
  await b.close();
});

test('req133 5a-26: no heartbeat in STU3 by default; the legacy heartbeat only when HEARTBEAT_SECONDS is set', async () => {
  const topic = uid();
  const a = await hub.join('Patient-open', { topic });
  assert.ok(await a.nothing(undefined, 1500), 'no heartbeat (nor anything else) without HEARTBEAT_SECONDS');
  await a.close();
  const legacy = await startHub({ bindings: { HEARTBEAT_SECONDS: '1' } });
  try {
    const s = await legacy.join('Patient-open', { topic });
    const hb = await s.next((m) => m.event?.['hub.event']?.toLowerCase() === 'heartbeat', 3000);
    assert.deepEqual(hb.event.context, [{ key: 'period', decimal: 1 }]);
    assert.equal(hb.event['hub.topic'], topic);
    await s.close();
  } finally {
    await legacy.stop();
  }
});

test('req133: WebSocket ping frames get pong frames; the text "ping" gets "pong" (auto-response)', async () => {
  const topic = uid();
  const r = await hub.subscribe({ topic, events: 'Patient-open' });
  const ws = await rawSocket(r.json['hub.channel.endpoint']);
  const pong = new Promise((resolve) => ws.once('pong', (data) => resolve(data.toString())));
  ws.ping('are you there');
  assert.equal(await pong, 'are you there');
  ws.send('ping');
  const t0 = Date.now();
  while (!ws.texts.includes('pong') && Date.now() - t0 < 3000) await sleep(10);
  assert.ok(ws.texts.includes('pong'), `received: ${JSON.stringify(ws.texts)}`);
  assert.equal(JSON.parse(ws.texts[0])['hub.mode'], 'subscribe');
  ws.close(1000);
});

test('neg24 5a-25: malformed messages, events sent over the socket and acks for unknown ids are ignored; the socket stays open', async () => {
  const topic = uid();
  const b = await hub.join('SyncError', { topic, name: 'B' });
  const a = await hub.join('Patient-open', { topic, name: 'A' });
  for (const junk of ['not json', '{"status":200}', '{"id":"nobody-sent-this","status":409}', '[1,2,3]', JSON.stringify(hub.event('Patient-open', [patient('p9')], { topic }))]) a.send(junk);
  assert.ok(await b.nothing(isSyncError, 500), 'an ack for an unknown id raises nothing');
  assert.deepEqual((await hub.getContext(topic)).json, { 'context.type': '', context: [] }, 'an event sent over the WebSocket is not a context change');
  const ev = hub.event('Patient-open', [patient('p1')], { topic });
  await hub.post(ev);
  assert.equal((await a.nextEvent('Patient-open')).id, ev.id, 'still subscribed');
  await a.close();
  await b.close();
});
