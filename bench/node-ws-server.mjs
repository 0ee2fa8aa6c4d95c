// A plain Node `ws` broadcast server (a baseline outside workerd): each POST body to /{room}
// goes verbatim to every socket connected to /{room}. No validation, no acks, no state.
// Loopback only; prints "listening http://127.0.0.1:PORT".
import { createServer } from 'node:http';
import { WebSocketServer } from 'ws';

const rooms = new Map();
const server = createServer((req, res) => {
  const room = req.url.split('/').pop();
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks).toString();
    for (const ws of rooms.get(room) ?? []) ws.send(body);
    res.writeHead(202, { 'content-type': 'application/json' }).end('{}');
  });
});
const wss = new WebSocketServer({ server });
wss.on('connection', (ws, req) => {
  const room = req.url.split('/').pop();
  if (!rooms.has(room)) rooms.set(room, new Set());
  rooms.get(room).add(ws);
  ws.on('close', () => rooms.get(room).delete(ws));
  ws.on('message', () => {});
});
server.listen(0, '127.0.0.1', () => console.log(`listening http://127.0.0.1:${server.address().port}`));
process.on('SIGTERM', () => process.exit(0));
