// A scripted stand-in for a hub, for what a correct hub never sends (stale events, duplicates,
// version gaps, garbage): the test decides every message, and sees every answer.
//
//   const fake = await startFakeHub();
//   ... connect the SDK with hubUrl: fake.base, topic: 'T' ...
//   const sock = await fake.socket();           // the SDK's socket (confirmation already sent)
//   sock.send({ timestamp, id, event });        // any message
//   await sock.ack('e1');                       // the SDK's answer to e1
import { createServer } from 'node:http';
import { WebSocketServer } from 'ws';

export async function startFakeHub({ context = { 'context.type': '', context: [] }, leaseSeconds = 3600 } = {}) {
  const wss = new WebSocketServer({ noServer: true });
  const sockets = [];
  const waiters = [];
  const requests = [];
  let n = 0;
  const fake = { requests, context, gets: 0 };
  const server = createServer((req, res) => {
    const cors = {
      'access-control-allow-origin': req.headers.origin ?? '*',
      'access-control-allow-headers': 'Authorization, Content-Type, Accept',
      'access-control-allow-methods': 'GET, POST, OPTIONS',
    };
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      requests.push({ method: req.method, url: req.url, body });
      if (req.method === 'OPTIONS') return res.writeHead(204, cors).end();
      if (req.method === 'GET') {
        fake.gets++;
        return res.writeHead(200, { ...cors, 'content-type': 'application/json' }).end(JSON.stringify(fake.context));
      }
      const form = new URLSearchParams(body);
      if (form.get('hub.mode') === 'subscribe') {
        const endpoint = form.get('hub.channel.endpoint') ?? `${fake.wsBase}/${++n}`;
        res.writeHead(202, { ...cors, 'content-type': 'application/json' }).end(JSON.stringify({ 'hub.channel.endpoint': endpoint }));
        return;
      }
      res.writeHead(202, cors).end();
    });
  });
  server.on('upgrade', (req, socket, head) => {
    wss.handleUpgrade(req, socket, head, (ws) => {
      const s = new FakeSocket(ws);
      sockets.push(s);
      const topic = 'T';
      s.send({ 'hub.mode': 'subscribe', 'hub.topic': topic, 'hub.events': fake.events ?? 'Patient-open,Patient-close,DiagnosticReport-open,DiagnosticReport-update,SyncError', 'hub.lease_seconds': leaseSeconds });
      waiters.splice(0).forEach((w) => w(s));
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const origin = `http://127.0.0.1:${server.address().port}`;
  fake.base = `${origin}/hub`;
  fake.wsBase = `ws://127.0.0.1:${server.address().port}/ws`;
  fake.sockets = sockets;
  /** The next socket the SDK opens (or the last one, if it is already open). */
  fake.socket = (which = sockets.length - 1) =>
    sockets[which] ? Promise.resolve(sockets[which]) : new Promise((r) => waiters.push(r));
  fake.close = () => {
    for (const s of sockets) s.ws.terminate();
    return new Promise((r) => server.close(r));
  };
  return fake;
}

class FakeSocket {
  constructor(ws) {
    this.ws = ws;
    this.received = [];
    this.waiters = [];
    ws.on('message', (d) => {
      const text = d.toString();
      let m;
      try {
        m = JSON.parse(text);
      } catch {
        m = { text };
      }
      this.received.push(m);
      this.waiters = this.waiters.filter((w) => !(w.match(m) && (w.resolve(m), true)));
    });
  }
  send(m) {
    this.ws.send(typeof m === 'string' ? m : JSON.stringify(m));
  }
  /** The next (or an already received) answer to `id`, beyond the first `skip` ones. */
  ack(id, { skip = 0, timeout = 3000 } = {}) {
    const have = this.received.filter((m) => m.id === id);
    if (have.length > skip) return Promise.resolve(have[skip]);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no answer to ${id} within ${timeout} ms; got ${JSON.stringify(this.received)}`)), timeout);
      let seen = have.length;
      this.waiters.push({
        match: (m) => m.id === id && seen++ >= skip,
        resolve: (m) => (clearTimeout(t), resolve(m)),
      });
    });
  }
}
