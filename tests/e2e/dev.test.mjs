// `make dev`'s server (scripts/dev.mjs): the hub and the examples on one origin, state kept
// across restarts — the README's first command, once set-up and builds are done.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, freePort, uid } from '../hub/harness.mjs';

/** Starts scripts/dev.mjs; resolves once it printed its URLs. */
async function startDev(port, state) {
  const child = spawn(process.execPath, [join(ROOT, 'scripts', 'dev.mjs')], {
    env: { ...process.env, DEV_PORT: String(port), DEV_STATE: state },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`make dev did not start within 30 s:\n${out}`)), 30_000);
    const on = (d) => {
      out += d;
      if (out.includes('Ctrl-C stops it.')) (clearTimeout(t), resolve());
    };
    child.stdout.on('data', on);
    child.stderr.on('data', on);
    child.once('exit', (code) => (clearTimeout(t), reject(new Error(`make dev exited ${code}:\n${out}`))));
  });
  return {
    out,
    stop: () => new Promise((resolve) => (child.once('exit', resolve), child.kill('SIGINT'))),
  };
}

test('make dev: the examples and the hub on one origin, AUTH_MODE=open announced, state kept across a restart', async () => {
  const port = await freePort();
  const state = mkdtempSync(join(tmpdir(), 'fhircast-dev-'));
  const origin = `http://127.0.0.1:${port}`;
  const topic = uid('dev');
  try {
    let dev = await startDev(port, state);
    assert.match(dev.out, new RegExp(`FHIRcast hub: ${origin}/api/hub`));
    assert.match(dev.out, /AUTH_MODE=open: no access tokens are checked/);
    const landing = await fetch(`${origin}/`);
    assert.equal(landing.status, 200);
    assert.match(landing.headers.get('content-type'), /text\/html/);
    assert.equal((await fetch(`${origin}/api/hub/.well-known/fhircast-configuration`)).status, 200);
    const ev = { timestamp: new Date().toISOString(), id: uid('e'), event: { 'hub.topic': topic, 'hub.event': 'Patient-open', context: [{ key: 'patient', resource: { resourceType: 'Patient', id: 'p1' } }] } };
    const posted = await fetch(`${origin}/api/hub`, { method: 'POST', headers: { 'content-type': 'application/fhir+json' }, body: JSON.stringify(ev) });
    assert.equal(posted.status, 202);
    await dev.stop();
    dev = await startDev(port, state);
    const ctx = await (await fetch(`${origin}/api/hub/${topic}`)).json();
    assert.equal(ctx.context[0].resource.id, 'p1', 'the context survived the restart');
    await dev.stop();
  } finally {
    rmSync(state, { recursive: true, force: true });
  }
});
