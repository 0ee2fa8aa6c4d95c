// A Worker and a topic object of different releases meet while a deploy replaces one with the
// other (or for the whole of a gradual deployment). Events went over HTTP (`/internal/event`)
// before they went over RPC (contract.rs): the object still serves them over HTTP, and the
// Worker falls back to HTTP when the object has no RPC. Each side of the release before is
// played by a few lines of JavaScript speaking its contract; the other side is the real build.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startHubWith, patient, uid } from './harness.mjs';

const hubs = [];
after(async () => Promise.all(hubs.map((h) => h.stop())));

/** The real hub beside `others`, its TOPIC binding replaced by `topic` when given. */
async function start(others, topic) {
  const hub = await startHubWith({ hub: topic ? { durableObjects: { TOPIC: topic } } : {}, workers: others });
  hubs.push(hub);
  return hub;
}

test('deploy: a Worker of the release before posts an event over HTTP to a topic object of this one, which applies and fans it out', async () => {
  // The Worker before RPC: it routes to the object exactly as contract.rs says, over fetch.
  const legacyWorker = {
    name: 'legacy-worker',
    modules: true,
    compatibilityDate: '2026-07-01',
    routes: ['*/legacy/*'],
    durableObjects: { TOPIC: { className: 'TopicObject', scriptName: 'hub', useSQLite: true } },
    script: `export default {
      async fetch(request, env) {
        const body = await request.text();
        const topic = JSON.parse(body).event['hub.topic'];
        const stub = env.TOPIC.get(env.TOPIC.idFromName(topic));
        return stub.fetch('https://topic/internal/event', { method: 'POST', body, headers: {
          'x-fhircast-topic': topic,
          'x-fhircast-auth': JSON.stringify({ topic: null, scopes: null, subject: null, client: null }),
          'x-fhircast-request-id': 'legacy-1',
        } });
      },
    };`,
  };
  const hub = await start([legacyWorker]);
  const viewer = await hub.join('Patient-open', { name: 'Viewer' });
  const r = await fetch(`${hub.origin}/legacy/event`, { method: 'POST', body: JSON.stringify(hub.event('Patient-open', [patient('p-1')], { id: 'from-before' })) });
  assert.equal(r.status, 202, await r.clone().text());
  assert.equal((await r.json()).id, 'from-before');
  const n = await viewer.nextEvent('Patient-open');
  assert.equal(n.event.context[0].resource.id, 'p-1');
  assert.equal((await hub.getContext()).json.context[0].resource.id, 'p-1');
});

test('deploy: this Worker posts an event to a topic object of the release before (no RPC): it falls back to HTTP, with the same contract', async () => {
  // The object before RPC: a class that does not extend DurableObject, serving /internal/event.
  const legacyObject = {
    name: 'legacy-object',
    modules: true,
    compatibilityDate: '2026-07-01',
    durableObjects: { LEGACY: { className: 'LegacyTopic', useSQLite: true } },
    script: `export class LegacyTopic {
      constructor(state) { this.state = state; }
      async fetch(request) {
        const url = new URL(request.url);
        if (url.pathname !== '/internal/event') return new Response('unexpected ' + url.pathname, { status: 500 });
        const event = JSON.parse(await request.text());
        const auth = JSON.parse(request.headers.get('x-fhircast-auth'));
        const topic = request.headers.get('x-fhircast-topic');
        return Response.json({ id: event.id, seen: { topic, auth: Object.keys(auth).length > 0 } }, { status: 202 });
      }
    }
    export default { fetch() { return new Response('legacy'); } };`,
  };
  const hub = await start([legacyObject], { className: 'LegacyTopic', scriptName: 'legacy-object', useSQLite: true });
  const topic = uid('topic');
  const r = await hub.post(hub.event('Patient-open', [patient('p-2')], { topic, id: 'to-before' }));
  assert.equal(r.status, 202, r.text);
  assert.deepEqual(r.json, { id: 'to-before', seen: { topic, auth: true } });
});
