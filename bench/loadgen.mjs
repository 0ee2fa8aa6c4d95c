// The load generator: WebSocket subscribers and HTTP publishers on 127.0.0.1, one Node process,
// every run bounded in events and in time. The same code drives the hub and the baselines; only
// how a subscriber is obtained (the hub's subscribe handshake vs a bare socket) differs.
import http from 'node:http';
import { randomUUID } from 'node:crypto';
import WebSocket from 'ws';

const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

/**
 * POSTs `body` to `url`; resolves with { status, text }. A request sent on a kept-alive
 * connection the server had just closed (ECONNRESET on a reused socket) is sent again once, as
 * Node's documentation advises: it never reached the server.
 */
export function post(url, body, contentType = 'application/fhir+json', retry = true) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', agent, headers: { 'content-type': contentType, 'content-length': Buffer.byteLength(body) } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode, text }));
    });
    req.on('error', (e) => {
      if (retry && req.reusedSocket && e.code === 'ECONNRESET') resolve(post(url, body, contentType, false));
      else reject(e);
    });
    req.end(body);
  });
}

/** Nearest-rank percentiles and the mean of `xs` (ms). */
export function stats(xs) {
  if (!xs.length) return { n: 0 };
  const s = [...xs].sort((a, b) => a - b);
  const at = (p) => s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
  const r = (x) => Math.round(x * 1000) / 1000;
  return { n: s.length, p50: r(at(50)), p99: r(at(99)), mean: r(s.reduce((a, b) => a + b, 0) / s.length), max: r(s[s.length - 1]) };
}

/**
 * Counts receipts per event id: `expect(id, n)` before publishing, `received(id)` from each
 * subscriber; the promise of `expect` resolves with the time the last one arrived.
 */
export class Tracker {
  constructor() {
    this.pending = new Map();
    this.stray = 0;
  }
  expect(id, need) {
    let entry;
    const done = new Promise((resolve) => (entry = { need, got: 0, resolve }));
    this.pending.set(id, entry);
    return done;
  }
  received(id) {
    const e = this.pending.get(id);
    if (!e) return void this.stray++;
    if (++e.got === e.need) {
      this.pending.delete(id);
      e.resolve(performance.now());
    }
  }
  forget(id) {
    this.pending.delete(id);
  }
}

/**
 * One subscriber socket. Every notification ({id, event}) is answered at once with
 * {id, status} (the status from `ack(msg)`, 200 by default) as the spec requires, then reported
 * to `onEvent(msg)`. Baselines get the same answers (and ignore them), so the generator does the
 * same work against every server.
 */
export class Sub {
  constructor(ws, { onEvent, ack }) {
    this.ws = ws;
    this.onEvent = onEvent;
    this.ack = ack ?? (() => 200);
    this.closedByServer = false;
    this.first = null;
    ws.on('message', (data) => {
      const msg = JSON.parse(data.toString());
      if (msg.id && msg.event) {
        const status = this.ack(msg);
        if (status) ws.send(`{"id":${JSON.stringify(msg.id)},"status":${status}}`);
        this.onEvent(msg, this);
      } else if (this.first) {
        const f = this.first;
        this.first = null;
        f(msg);
      }
    });
    ws.on('error', (e) => (this.error = e));
    ws.on('close', () => {
      if (!this.closing) this.closedByServer = true;
    });
  }
  static open(url, opts, { awaitFirst = false, timeout = 15000 } = {}) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { perMessageDeflate: false });
      const sub = new Sub(ws, opts);
      const t = setTimeout(() => (ws.terminate(), reject(new Error(`socket ${url}: no answer in ${timeout} ms`))), timeout);
      ws.once('error', (e) => (clearTimeout(t), reject(e)));
      ws.once('unexpected-response', (_q, res) => (clearTimeout(t), reject(new Error(`upgrade refused: ${res.statusCode}`))));
      if (awaitFirst) sub.first = () => (clearTimeout(t), resolve(sub));
      else ws.once('open', () => (clearTimeout(t), resolve(sub)));
    });
  }
  close() {
    this.closing = true;
    this.ws.terminate();
  }
}

/** Runs `fn` over `items` with at most `limit` at a time. */
export async function pool(items, limit, fn) {
  const out = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** A FHIRcast event request body (Patient-open: a realistic small event, ~330 bytes). */
export function eventBody(topic, { id = randomUUID(), timestamp, patient = 'p1', name = 'Patient-open' } = {}) {
  return JSON.stringify({
    timestamp,
    id,
    event: {
      'hub.topic': topic,
      'hub.event': name,
      context: [{ key: 'patient', resource: { resourceType: 'Patient', id: patient, identifier: [{ system: 'urn:oid:1.2.36.146.595.217.0.1', value: patient }] } }],
    },
  });
}

/**
 * How the generator reaches one server: `join(room, n, opts)` gives n connected subscribers,
 * `publish(room, body)` posts an event. For the hub a subscriber is subscribed (form POST),
 * connected, and confirmed (it waits for the hub's confirmation message, req 43).
 */
export function targetFor(server) {
  if (server.kind === 'hub') {
    return {
      kind: server.kind,
      async join(room, n, opts, events = 'Patient-open') {
        return pool(Array.from({ length: n }), 25, async () => {
          const form = `hub.channel.type=websocket&hub.mode=subscribe&hub.topic=${encodeURIComponent(room)}&hub.events=${encodeURIComponent(events)}`;
          const r = await post(server.base, form, 'application/x-www-form-urlencoded');
          if (r.status !== 202) throw new Error(`subscribe: ${r.status} ${r.text}`);
          return Sub.open(JSON.parse(r.text)['hub.channel.endpoint'], opts, { awaitFirst: true });
        });
      },
      publish: (room, body) => post(server.base, body),
    };
  }
  return {
    kind: server.kind,
    async join(room, n, opts) {
      return pool(Array.from({ length: n }), 25, () => Sub.open(`${server.origin.replace('http', 'ws')}/${room}`, opts));
    },
    publish: (room, body) => post(`${server.origin}/${room}`, body),
  };
}
