// A real SMART on FHIR EHR launch (issue 15): the EHR opens the viewer's launch page with iss
// and launch; fhirclient (SMART's JavaScript client) reads the dev authorization server's
// configuration, sends the browser to its authorize endpoint with PKCE, and exchanges the code
// at its token endpoint; the token response carries hub.url and hub.topic (FHIRcast req 7),
// with which the viewer subscribes and follows the EHR. Then the dev server's refusals.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setup, inSync } from './harness.mjs';

let env;
before(async () => (env = await setup()));
after(async () => env?.teardown());

test('req7: the EHR launches the viewer through SMART (fhirclient, PKCE); the token response names the hub and the topic, and the viewer follows the EHR', async () => {
  await env.fresh();
  const ehr = await env.ehr();
  const launchHref = await ehr.locator('#launch-viewer').getAttribute('href');
  const launchUrl = new URL(launchHref, env.origin);
  assert.equal(launchUrl.pathname, '/viewer/launch.html');
  assert.equal(launchUrl.searchParams.get('iss'), `${env.origin}/smart/fhir`);
  assert.equal(launchUrl.searchParams.get('hub.topic'), null, 'nothing of the session but the opaque launch');

  // What the viewer's window asks of the authorization server, and what it is answered.
  const seen = [];
  const track = (page) => {
    page.on('request', (r) => {
      const u = new URL(r.url());
      if (u.pathname.startsWith('/smart/') || u.pathname === '/api/hub') seen.push({ method: r.method(), path: u.pathname, query: u.searchParams, body: r.postData(), headers: r.headers() });
    });
  };
  const [viewer] = await Promise.all([
    ehr.context().waitForEvent('page', (p) => { track(p); return true; }),
    ehr.locator('#launch-viewer').click(),
  ]);
  await inSync(viewer);
  assert.equal(new URL(viewer.url()).pathname, '/viewer/');
  assert.equal(new URL(viewer.url()).searchParams.get('code'), null, 'fhirclient took the code out of the URL');

  const authorize = seen.find((r) => r.path === '/smart/authorize');
  assert.ok(authorize, `the browser went to the authorize endpoint: ${seen.map((r) => r.path)}`);
  assert.equal(authorize.query.get('aud'), `${env.origin}/smart/fhir`);
  assert.equal(authorize.query.get('code_challenge_method'), 'S256');
  assert.match(authorize.query.get('scope'), /fhircast\/Patient-open\.read/);
  const tokenReq = seen.find((r) => r.path === '/smart/token' && r.method === 'POST');
  assert.ok(tokenReq, 'the code was exchanged at the token endpoint');
  assert.match(tokenReq.body, /code_verifier=/);
  const tokenResponse = await viewer.evaluate(() => JSON.parse(sessionStorage.getItem(sessionStorage.getItem('SMART_KEY').replace(/"/g, ''))).tokenResponse);
  assert.equal(tokenResponse['hub.url'], `${env.origin}/api/hub`);
  assert.equal(tokenResponse['hub.topic'], env.topic);
  // The viewer subscribed to the EHR's session with the access token it was given (req 19).
  const subscribe = seen.find((r) => r.path === '/api/hub' && r.method === 'POST' && /hub\.mode=subscribe/.test(r.body ?? ''));
  assert.ok(subscribe, 'the viewer subscribed');
  assert.match(subscribe.body, new RegExp(`hub\\.topic=${env.topic}`));
  assert.equal(subscribe.headers.authorization, `Bearer ${tokenResponse.access_token}`);

  // It follows the EHR, and the EHR's roster names it.
  await ehr.locator('[data-open="Patient/pat-ada"]').click();
  await viewer.locator('#patient', { hasText: 'Lovelace, Ada' }).waitFor();
  await ehr.locator('#subscribers tr', { hasText: 'Image viewer' }).waitFor();
  // A reload keeps the launch (fhirclient's state in sessionStorage): no new authorization.
  const authorizations = seen.filter((r) => r.path === '/smart/authorize').length;
  await viewer.reload();
  await inSync(viewer);
  await viewer.locator('#patient', { hasText: 'Lovelace, Ada' }).waitFor();
  assert.equal(seen.filter((r) => r.path === '/smart/authorize').length, authorizations);
  assert.deepEqual(env.errors, []);
});

test('the dev SMART server refuses what a real one refuses: another origin to redirect to, a wrong aud, a missing launch, no PKCE, a wrong verifier, a forged code', async () => {
  const origin = env.origin;
  const iss = `${origin}/smart/fhir`;
  const config = await (await fetch(`${iss}/.well-known/smart-configuration`)).json();
  assert.deepEqual(config.code_challenge_methods_supported, ['S256']);
  const launch = Buffer.from(JSON.stringify({ topic: 't-smart' })).toString('base64url');
  const verifier = 'v'.repeat(50);
  const challenge = Buffer.from(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier))).toString('base64url');
  const base = { response_type: 'code', client_id: 'app', redirect_uri: `${origin}/viewer/`, scope: 'launch fhircast/Patient-open.read', state: 's1', aud: iss, launch, code_challenge: challenge, code_challenge_method: 'S256' };
  const authorize = (over) => fetch(`${origin}/smart/authorize?${new URLSearchParams({ ...base, ...over })}`, { redirect: 'manual' });
  const errorOf = (r) => new URL(r.headers.get('location')).searchParams.get('error_description');

  let r = await authorize({ redirect_uri: 'https://attacker.example/cb' });
  assert.equal(r.status, 400, 'no redirect to another origin');
  assert.match((await r.json()).error_description, /must be on/);
  r = await authorize({ aud: 'https://other.example/fhir' });
  assert.match(errorOf(r), /aud must be/);
  r = await authorize({ launch: '' });
  assert.match(errorOf(r), /launch is missing/);
  r = await authorize({ code_challenge: '' });
  assert.match(errorOf(r), /PKCE is required/);

  r = await authorize({});
  assert.equal(r.status, 302);
  const back = new URL(r.headers.get('location'));
  assert.equal(back.searchParams.get('state'), 's1');
  const code = back.searchParams.get('code');
  const token = (over) =>
    fetch(`${origin}/smart/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: base.redirect_uri, client_id: 'app', code_verifier: verifier, ...over }),
    });
  r = await token({ code_verifier: 'w'.repeat(50) });
  assert.equal(r.status, 400);
  assert.match((await r.json()).error_description, /code_verifier does not match/);
  r = await token({ code: `${code.split('.')[0]}.AAAA` });
  assert.match((await r.json()).error_description, /not one this server issued/);
  r = await token({ redirect_uri: `${origin}/report/` });
  assert.match((await r.json()).error_description, /redirect_uri differs/);
  r = await token({});
  assert.equal(r.status, 200);
  const body = await r.json();
  assert.equal(body['hub.topic'], 't-smart');
  assert.equal(body['hub.url'], `${origin}/api/hub`);
  assert.equal(body.token_type, 'Bearer');
  assert.equal(body.scope, 'launch fhircast/Patient-open.read');
  assert.equal(r.headers.get('cache-control'), 'no-store');
  r = await token({});
  assert.equal(r.status, 400, 'a code is good for one token');
  assert.match((await r.json()).error_description, /already used/);

  // The redirect URI's own query is kept; its exact text is what the token request repeats.
  r = await authorize({ redirect_uri: `${origin}/viewer/?from=ehr` });
  const kept = new URL(r.headers.get('location'));
  assert.equal(kept.searchParams.get('from'), 'ehr');
  r = await token({ code: kept.searchParams.get('code'), redirect_uri: `${origin}/viewer/?from=ehr` });
  assert.equal(r.status, 200);
});
