// Socket helpers for the hub tests that the shared harness does not have: Close frames, raw
// WebSockets, upgrade refusals, and raw HTTP requests.
import { setTimeout as sleep } from 'node:timers/promises';
import http from 'node:http';
import WebSocket from 'ws';

/**
 * Resolves with `{ code, reason }` of the Close frame the hub sends, as soon as it arrives, then
 * drops the TCP connection. `ws` emits 'close' only once the TCP connection ends, and workerd
 * (Miniflare, local) keeps it open ~10 s after a close that a Durable Object initiated from a
 * fetch or an alarm (reproduced with a plain JavaScript Durable Object; not the hub's doing), so
 * waiting for `Subscriber.closed` would cost 10 s per hub-initiated close.
 */
export async function closeFrame(sub, timeout = 5000) {
  const ws = sub.ws ?? sub;
  const t0 = Date.now();
  while (!ws._closeFrameReceived && ws.readyState !== WebSocket.CLOSED) {
    if (Date.now() - t0 > timeout) throw new Error(`no Close frame within ${timeout} ms`);
    await sleep(10);
  }
  const frame = { code: ws._closeCode, reason: ws._closeMessage.toString() };
  ws.terminate();
  return frame;
}

/** A raw WebSocket (no JSON parsing): every text message is pushed to `texts`. */
export function rawSocket(url) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.texts = [];
    ws.on('message', (data) => ws.texts.push(data.toString()));
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (_req, res) => reject(Object.assign(new Error(`upgrade refused: ${res.statusCode}`), { status: res.statusCode })));
    ws.once('error', reject);
  });
}

/** Resolves with the upgrade refusal status for `url`, or rejects if the upgrade succeeds. */
export function upgradeRefusal(url, timeout = 5000) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    const t = setTimeout(() => (ws.terminate(), reject(new Error(`no answer to the upgrade within ${timeout} ms`))), timeout);
    ws.once('open', () => {
      clearTimeout(t);
      ws.terminate();
      reject(new Error(`the upgrade to ${url} was accepted`));
    });
    ws.once('unexpected-response', (req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (body += c));
      res.on('end', () => {
        clearTimeout(t);
        req.destroy();
        resolve({ status: res.statusCode, body });
      });
    });
    ws.once('error', (e) => (clearTimeout(t), reject(e)));
  });
}

/**
 * A raw HTTP request with node:http (arbitrary bytes, paths and headers; `chunked` sends the
 * body in pieces without Content-Length). `path` is below the origin.
 */
export function raw(h, { method = 'POST', path = '/api/hub', headers = {}, body, chunked = false }) {
  const { port } = new URL(h.origin);
  return new Promise((resolve, reject) => {
    let answered = false;
    const hdrs = { ...headers };
    const buf = body === undefined ? undefined : Buffer.isBuffer(body) ? body : Buffer.from(body);
    if (buf && !chunked) hdrs['content-length'] = String(buf.length);
    // A connection per request: the hub may answer (413) before reading a body and close.
    const req = http.request({ host: '127.0.0.1', port, method, path, headers: hdrs, agent: false }, (res) => {
      answered = true;
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        let json;
        try {
          json = JSON.parse(text);
        } catch {}
        resolve({ status: res.statusCode, headers: res.headers, text, json });
      });
    });
    // The hub may answer (413) before it has read all of a large body.
    req.on('error', (e) => (answered ? undefined : reject(e)));
    if (buf && chunked) {
      for (let i = 0; i < buf.length; i += 1000) req.write(buf.subarray(i, i + 1000));
      req.end();
    } else req.end(buf);
  });
}

/** Runs requests with at most `width` in flight. */
export async function pool(items, width, fn) {
  const results = new Array(items.length);
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]);
    }
  }));
  return results;
}

export { sleep };
