// The self-hosted hub (issue 17): the same build run by open-source workerd with
// selfhost/fhircast.capnp, as on a hospital's server: settings from environment variables (here
// JWT with an HS256 secret), topics in SQLite on local disk. A smoke test of subscribe,
// publish, restart and replay.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { request } from 'node:http';
import { mkdtempSync, rmSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Hub, ROOT, freePort, patient } from '../hub/harness.mjs';
import { jwt, JWT_BINDINGS } from '../hub/tokens.mjs';

const WORKERD = join(ROOT, 'node_modules', '.bin', 'workerd');
let storage;
let port;
/** workerd's standard output (the Worker's log), across restarts. */
let stdout = '';
let proc;

/** Starts workerd on `port` with the config, storing in `storage`; resolves once it serves. */
async function serve() {
  proc = spawn(WORKERD, ['serve', join(ROOT, 'selfhost', 'fhircast.capnp'), '--directory-path', `storage=${storage}`, '--socket-addr', `http=127.0.0.1:${port}`], {
    env: { ...process.env, ...JWT_BINDINGS },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  proc.stdout.setEncoding('utf8');
  proc.stdout.on('data', (d) => (stdout += d));
  const exited = new Promise((resolve) => proc.once('exit', resolve));
  proc.exited = exited;
  for (let i = 0; i < 100; i++) {
    try {
      if ((await fetch(`http://127.0.0.1:${port}/api/hub/.well-known/fhircast-configuration`)).ok) return;
    } catch {}
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('workerd did not start');
}

/** Stops workerd at once (SIGINT). SIGTERM would drain: wait for every open WebSocket to close,
 * which for a hub whose subscribers stay connected is minutes (README "Deploying"). */
async function stop() {
  if (!proc || proc.exitCode !== null) return;
  proc.kill('SIGINT');
  await proc.exited;
}

before(async () => {
  storage = mkdtempSync(join(tmpdir(), 'fhircast-selfhost-'));
  port = await freePort();
  await serve();
});
after(async () => {
  await stop();
  rmSync(storage, { recursive: true, force: true });
});

test('self-hosted: workerd with selfhost/fhircast.capnp verifies tokens, fans out, and keeps topics on local disk across a restart (replayed to a new subscriber)', async () => {
  const hub = new Hub(`http://127.0.0.1:${port}/api/hub`, `http://127.0.0.1:${port}`);
  const token = jwt({}, { alg: 'HS256' });
  // Settings come from the process environment: AUTH_MODE=jwt is in force.
  assert.equal((await hub.request(`/${hub.topic}`)).status, 401);

  // Behind the hospital's TLS proxy: the WebSocket URL handed out is wss:// on the proxy's host.
  // (node:http, since fetch does not send a Host of one's choosing, as a proxy does.)
  const proxied = await new Promise((resolve, reject) => {
    const body = new URLSearchParams({ 'hub.channel.type': 'websocket', 'hub.mode': 'subscribe', 'hub.topic': hub.topic, 'hub.events': 'Patient-open' }).toString();
    const req = request(
      { host: '127.0.0.1', port, method: 'POST', path: '/api/hub', headers: { host: 'hub.hospital.example', 'x-forwarded-proto': 'https', authorization: `Bearer ${token}`, 'content-type': 'application/x-www-form-urlencoded' } },
      (res) => {
        let text = '';
        res.on('data', (d) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode, text }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
  assert.equal(proxied.status, 202, proxied.text);
  assert.match(JSON.parse(proxied.text)['hub.channel.endpoint'], /^wss:\/\/hub\.hospital\.example\/api\/hub\/ws\//);

  const viewer = await hub.join('Patient-open', { name: 'Viewer', token });
  const posted = await hub.post(hub.event('Patient-open', [patient('p-selfhost')], { id: 'open-1' }), { token });
  assert.equal(posted.status, 202, posted.text);
  const got = await viewer.next((m) => m.event?.['hub.event'] === 'Patient-open');
  assert.equal(got.id, 'open-1');

  // The topic is on disk, under the namespace's key.
  assert.ok(readdirSync(join(storage, 'fhircast-hub-topic-v1')).some((f) => f.endsWith('.sqlite') && f !== 'metadata.sqlite'));

  await stop();
  await serve();
  const current = await hub.request(`/${hub.topic}`, { headers: { authorization: `Bearer ${token}` } });
  assert.equal(current.status, 200, current.text);
  assert.equal(current.json['context.type'], 'Patient');
  assert.equal(current.json.context[0].resource.id, 'p-selfhost');
  // A subscriber after the restart is sent the current context (req 44).
  const late = await hub.join('Patient-open', { name: 'Late app', token });
  const replay = await late.next((m) => m.event?.['hub.event'] === 'Patient-open');
  assert.equal(replay.event.context[0].resource.id, 'p-selfhost');
  // The timeline is stored with the topic: the event before the restart is in it.
  const timeline = await hub.request(`/${hub.topic}/timeline`, { headers: { authorization: `Bearer ${token}` } });
  assert.equal(timeline.status, 200, timeline.text);
  assert.ok(timeline.json.facts.some((f) => f.fact === 'event' && f.id === 'open-1' && f.anchor === 'Patient/p-selfhost'));
  // No queue here: the AuditEvents are lines of workerd's standard output.
  const audits = stdout.split('\n').filter((l) => l.includes('AuditEvent {')).map((l) => JSON.parse(l.slice(l.indexOf('{'))));
  assert.ok(audits.some((a) => a.entity.some((e) => e.what.reference === 'Patient/p-selfhost')), stdout);
  late.ws.close();
  viewer.ws.close();
});
