// Content sharing (SUB items 107-121): update() builds the transaction Bundle and carries the
// anchor's tracked context.versionId; versions follow own and others' updates.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setup, uid, eventually, bundle, observationPut } from './harness.mjs';

let env;
before(async () => (env = await setup()));
after(async () => env?.teardown());

const REPORT = { resourceType: 'DiagnosticReport', id: 'r1', status: 'preliminary', code: { text: 'CT chest' } };
const PATIENT = { resourceType: 'Patient', id: 'p1' };

test('req108 req109 req110 req116 req117: update() sends the Bundle with the tracked version; versions follow every update', async () => {
  env.hub.topic = uid('topic');
  const other = await env.hub.join('DiagnosticReport-open,DiagnosticReport-update', { name: 'Other' });
  const app = await env.app();
  await app.connect(
    { events: ['DiagnosticReport-open', 'DiagnosticReport-update', 'DiagnosticReport-close'], subscriberName: 'Reporting' },
    `{ 'DiagnosticReport-update': (e) => { log.events.push(e); } }`,
  );
  await app.until(() => client.status().state === 'in-sync');
  // Open the report: the hub gives it a version (req 108), which the SDK learns from the echo.
  await app.eval(
    ({ REPORT, PATIENT }) =>
      client.publish('DiagnosticReport-open', [
        { key: 'report', resource: REPORT },
        { key: 'patient', resource: PATIENT },
      ]),
    { REPORT, PATIENT },
  );
  const opened = await other.nextEvent('DiagnosticReport-open');
  const v1 = opened.event['context.versionId'];
  assert.ok(v1);
  assert.equal((await app.eval(() => client.currentContext())).versionId, v1);

  // Own update: PUT an Observation.
  const obs = { resourceType: 'Observation', id: 'o1', status: 'preliminary', valueString: 'nodule' };
  const updateId = await app.eval((obs) => client.update('DiagnosticReport/r1', { put: [obs] }), obs);
  const sent = JSON.parse(app.requests.find((r) => r.method === 'POST' && r.body?.includes(updateId)).body);
  assert.equal(sent.event['hub.event'], 'DiagnosticReport-update');
  assert.equal(sent.event['context.versionId'], v1, 'req 117: the version the update is based on');
  assert.deepEqual(sent.event.context[0], { key: 'report', reference: { reference: 'DiagnosticReport/r1' } });
  const b = sent.event.context.find((c) => c.key === 'updates').resource;
  assert.equal(b.resourceType, 'Bundle');
  assert.equal(b.type, 'transaction');
  assert.deepEqual(b.entry, [{ request: { method: 'PUT', url: 'Observation/o1' }, resource: obs }]);
  const got = await other.nextEvent('DiagnosticReport-update');
  const v2 = got.event['context.versionId'];
  assert.equal(got.event['context.priorVersionId'], v1, 'req 110');
  assert.notEqual(v2, v1);
  assert.equal((await app.eval(() => client.currentContext())).versionId, v2);

  // Another app's update arrives: the SDK hands it over and tracks its version.
  const r = await env.hub.post(
    env.hub.event(
      'DiagnosticReport-update',
      [{ key: 'report', reference: { reference: 'DiagnosticReport/r1' } }, bundle([observationPut('o2')])],
      { id: 'other-update', versionId: v2 },
    ),
  );
  assert.equal(r.status, 202, r.text);
  await app.until(() => log.events.some((e) => e.id === 'other-update'));
  const theirs = (await app.log()).events.find((e) => e.id === 'other-update');
  const v3 = theirs.event['context.versionId'];
  assert.equal(theirs.event['context.priorVersionId'], v2);
  await app.until((v3) => client.currentContext().versionId === v3, v3);
  assert.equal(app.acks().find((a) => a.id === 'other-update')?.status, 200);

  // The next own update builds on v3; a delete is a DELETE entry.
  const delId = await app.eval(() => client.update('DiagnosticReport/r1', { delete: ['Observation/o1'] }));
  const del = JSON.parse(app.requests.find((r) => r.method === 'POST' && r.body?.includes(delId)).body);
  assert.equal(del.event['context.versionId'], v3);
  assert.deepEqual(del.event.context.find((c) => c.key === 'updates').resource.entry, [
    { fullUrl: 'Observation/o1', request: { method: 'DELETE', url: 'Observation/o1' } },
  ]);
  // The hub's content now has o2 only.
  const ctx = await eventually(async () => {
    const c = (await env.hub.getContext()).json;
    const content = c.context.find((e) => e.key === 'content')?.resource;
    return content?.entry?.length === 1 && content;
  }, { message: 'the content after the delete' });
  assert.equal(ctx.entry[0].resource.id, 'o2');
  assert.equal(await app.eval(() => client.status().state), 'in-sync');
  await app.eval(() => client.close());
  await other.close();
});

test('req117 req121: update() and select() of an anchor that is not open are refused before sending', async () => {
  env.hub.topic = uid('topic');
  const app = await env.app();
  await app.connect({ events: ['DiagnosticReport-open', 'DiagnosticReport-update'] }, `{}`);
  await app.until(() => client.status().state === 'in-sync');
  const errors = await app.eval(async () => {
    const out = [];
    for (const call of [
      () => client.update('DiagnosticReport/nope', { put: [{ resourceType: 'Observation', id: 'o1' }] }),
      () => client.update('DiagnosticReport/nope', { put: [{ resourceType: 'Observation' }] }),
      () => client.update('not-an-anchor', { delete: ['Observation/o1'] }),
      () => client.select('DiagnosticReport/r1', ['bad ref']),
    ]) {
      try {
        await call();
        out.push('resolved');
      } catch (e) {
        out.push(e.message);
      }
    }
    return out;
  });
  assert.match(errors[0], /no context.versionId is known for DiagnosticReport\/nope/);
  assert.match(errors[1], /needs a resourceType and an id/);
  assert.match(errors[2], /not an anchor/);
  assert.match(errors[3], /references\[0\]/);
  await app.eval(() => client.close());
});

test('req76 req119 req121: select() of the current anchor is sent and reaches the others; of any other anchor it is refused before sending', async () => {
  env.hub.topic = uid('topic');
  const other = await env.hub.join('DiagnosticReport-open,DiagnosticReport-select', { name: 'Other' });
  const app = await env.app();
  await app.connect({ events: ['DiagnosticReport-open', 'DiagnosticReport-select'] }, `{}`);
  await app.until(() => client.status().state === 'in-sync');
  const r2 = { ...REPORT, id: 'r2' };
  for (const report of [REPORT, r2]) {
    await app.eval(
      ({ report, PATIENT }) =>
        client.publish('DiagnosticReport-open', [
          { key: 'report', resource: report },
          { key: 'patient', resource: PATIENT },
        ]),
      { report, PATIENT },
    );
  }
  await app.until(() => client.currentContext()?.anchor === 'DiagnosticReport/r2');
  // r1 is open but not current: no select for it (req 119).
  const refused = await app.eval(() => client.select('DiagnosticReport/r1', ['Observation/o1']).then(() => 'resolved', (e) => e.message));
  assert.match(refused, /not the current context.*req 119/);
  const id = await app.eval(() => client.select('DiagnosticReport/r2', ['Observation/o1']));
  const sel = await other.nextEvent('DiagnosticReport-select');
  assert.equal(sel.id, id);
  assert.deepEqual(sel.event.context, [
    { key: 'report', reference: { reference: 'DiagnosticReport/r2' } },
    { key: 'select', reference: { reference: 'Observation/o1' } },
  ]);
  const posts = app.requests.filter((r) => r.method === 'POST' && r.body?.includes('"hub.event":"DiagnosticReport-select"'));
  assert.equal(posts.length, 1, 'the refused select was never sent');
  await app.eval(() => client.close());
  await other.close();
});

/** The ids of the Observations in `client.currentContext().resources`, in the page (null: absent). */
const shared = (app) => app.eval(() => client.currentContext()?.resources?.map((r) => r.id).sort() ?? null);

test('req117: currentContext().resources is the anchor\'s shared content: read on opening, every update applied (own and others\'), read again after a missed update, told through onContextChange', async () => {
  env.hub.topic = uid('topic');
  const report = [{ key: 'report', resource: REPORT }, { key: 'patient', resource: PATIENT }];
  // Content exists before the app connects: it is read with the current context.
  let r = await env.hub.post(env.hub.event('DiagnosticReport-open', report, { id: 'open-1' }));
  const v1 = JSON.parse(r.text)['context.versionId'];
  r = await env.hub.post(env.hub.event('DiagnosticReport-update', [{ key: 'report', reference: { reference: 'DiagnosticReport/r1' } }, bundle([observationPut('o1')])], { id: 'u-1', versionId: v1 }));
  assert.equal(r.status, 202, r.text);
  const v2 = JSON.parse(r.text)['context.versionId'];

  const app = await env.app();
  await app.connect(
    { events: ['DiagnosticReport-open', 'DiagnosticReport-update', 'DiagnosticReport-close'], subscriberName: 'Reporting' },
    `{ 'DiagnosticReport-update': (e) => (window.refuseUpdates ? 'refuse' : undefined) }`,
  );
  await app.until(() => client.status().state === 'in-sync');
  assert.deepEqual(await shared(app), ['o1']);

  // Another app's update: applied, and onContextChange says so.
  r = await env.hub.post(env.hub.event('DiagnosticReport-update', [{ key: 'report', reference: { reference: 'DiagnosticReport/r1' } }, bundle([observationPut('o2')])], { id: 'u-2', versionId: v2 }));
  const v3 = JSON.parse(r.text)['context.versionId'];
  await app.until((v3) => client.currentContext().versionId === v3, v3);
  assert.deepEqual(await shared(app), ['o1', 'o2']);
  const told = (await app.log()).contexts.at(-1);
  assert.deepEqual(told.resources.map((x) => x.id).sort(), ['o1', 'o2'], 'onContextChange carries the resources');
  assert.equal(told.shared, undefined, 'the Bundles themselves are not handed to the app');

  // Its own update: a DELETE; applied once echoed, and told through onContextChange too.
  const before = (await app.log()).contexts.length;
  await app.eval(() => client.update('DiagnosticReport/r1', { delete: ['Observation/o1'] }));
  assert.deepEqual(await shared(app), ['o2']);
  await app.until((n) => log.contexts.length > n && log.contexts.at(-1).resources?.length === 1, before);

  // It refuses an update (unsaved work): out of sync, the refused change not shown. The next
  // update is one it cannot apply (its prior version is the refused one's): read again.
  await app.eval(() => (window.refuseUpdates = true));
  let v = (await app.eval(() => client.currentContext())).versionId;
  r = await env.hub.post(env.hub.event('DiagnosticReport-update', [{ key: 'report', reference: { reference: 'DiagnosticReport/r1' } }, bundle([observationPut('o3')])], { id: 'u-3', versionId: v }));
  v = JSON.parse(r.text)['context.versionId'];
  await app.until(() => client.status().state === 'out-of-sync');
  assert.deepEqual(await shared(app), ['o2'], 'the refused update is not applied');
  await app.eval(() => (window.refuseUpdates = false));
  r = await env.hub.post(env.hub.event('DiagnosticReport-update', [{ key: 'report', reference: { reference: 'DiagnosticReport/r1' } }, bundle([observationPut('o4')])], { id: 'u-4', versionId: v }));
  await app.until(() => client.currentContext()?.resources?.length === 3);
  assert.deepEqual(await shared(app), ['o2', 'o3', 'o4'], 'what the hub holds, read again');
  assert.equal(await app.eval(() => client.status().state), 'in-sync');

  // An app that does not follow the anchor's updates has no resources.
  const viewer = await env.app();
  await viewer.connect({ events: ['DiagnosticReport-open'], subscriberName: 'Viewer' });
  await viewer.until(() => client.status().state === 'in-sync');
  assert.equal((await viewer.eval(() => client.currentContext())).anchor, 'DiagnosticReport/r1');
  assert.equal(await shared(viewer), null);
  await viewer.eval(() => client.close());
  await app.eval(() => client.close());
});
