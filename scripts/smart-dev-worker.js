// The SMART on FHIR authorization server `make dev` serves for local use (issue 15), under
// /smart/ on the examples' origin: enough of one for an EHR launch through fhirclient, with no
// user to log in. Never deployed (edge-hub/wrangler.toml does not know it): scripts/dev.mjs and
// the e2e harness run it as a second Worker next to the hub (scripts/smart-dev.mjs).
//
//   GET  /smart/fhir/.well-known/smart-configuration   the endpoints (SMART App Launch 2.x)
//   GET  /smart/authorize   response_type=code, client_id, redirect_uri, scope, state, aud,
//                           launch, code_challenge(_method=S256) -> 302 redirect_uri?code&state
//   POST /smart/token       grant_type=authorization_code, code, redirect_uri, client_id,
//                           code_verifier -> { access_token, …, "hub.url", "hub.topic" }
//                           (once per code)
//
// The EHR names the session in `launch` (base64url of {"topic": …}); the token response carries
// it as `hub.topic` with `hub.url`, as an EHR supporting FHIRcast does when the app asked for a
// fhircast/ scope (FHIRcast req 7). Codes are stateless: the request's parameters, signed with a
// key made when this Worker starts, valid for 60 s. The access token is random: the dev hub runs
// with AUTH_MODE=open and reads none. What is checked is what a real server checks, so that an
// app that gets its launch wrong fails here too: aud is this server's FHIR base, redirect_uri is
// on this origin and the same at both steps, PKCE (S256) verifier matches its challenge, the
// code is this server's and fresh.

const CODE_TTL_MS = 60_000;
/** Codes exchanged, by their nonce, with when they expire. */
const used = new Map();
// Made on first use: a Worker may not make random values at startup, outside a request.
let keyPromise = null;
const key = () => (keyPromise ??= crypto.subtle.generateKey({ name: 'HMAC', hash: 'SHA-256' }, false, ['sign', 'verify']));
const enc = new TextEncoder();

function b64url(bytes) {
  let s = '';
  for (const b of new Uint8Array(bytes)) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function unb64url(text) {
  const s = atob(text.replace(/-/g, '+').replace(/_/g, '/'));
  return Uint8Array.from(s, (c) => c.charCodeAt(0));
}

function json(status, body, headers = {}) {
  return new Response(JSON.stringify(body), {
    status,
    headers: { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers },
  });
}

/** An OAuth error (RFC 6749 §5.2) with a description that says what to fix. */
function oauthError(status, error, description) {
  return json(status, { error, error_description: description });
}

async function sign(payload) {
  const body = b64url(enc.encode(JSON.stringify(payload)));
  const mac = await crypto.subtle.sign('HMAC', await key(), enc.encode(body));
  return `${body}.${b64url(mac)}`;
}

async function verify(code) {
  const [body, mac] = String(code).split('.');
  if (!body || !mac) return null;
  try {
    if (!(await crypto.subtle.verify('HMAC', await key(), unb64url(mac), enc.encode(body)))) return null;
    return JSON.parse(new TextDecoder().decode(unb64url(body)));
  } catch {
    return null;
  }
}

/** The topic an EHR put into `launch`, or null. */
function launchTopic(launch) {
  try {
    const topic = JSON.parse(new TextDecoder().decode(unb64url(launch))).topic;
    return typeof topic === 'string' && topic ? topic : null;
  } catch {
    return null;
  }
}

async function authorize(url) {
  const q = url.searchParams;
  const iss = `${url.origin}/smart/fhir`;
  let redirect;
  try {
    redirect = new URL(q.get('redirect_uri') ?? '');
  } catch {
    return oauthError(400, 'invalid_request', 'redirect_uri is missing or not a URL');
  }
  // Never redirect elsewhere: a dev server must not become an open redirector.
  if (redirect.origin !== url.origin) {
    return oauthError(400, 'invalid_request', `redirect_uri must be on ${url.origin}, not ${redirect.origin}`);
  }
  // The redirect URI's own query is kept (RFC 6749 §3.1.2); code or error and state are added.
  const back = (params) => {
    for (const [k, v] of Object.entries(params)) redirect.searchParams.set(k, v);
    return Response.redirect(redirect.href, 302);
  };
  const fail = (error, description) => back({ error, error_description: description, state: q.get('state') ?? '' });
  if (q.get('response_type') !== 'code') return fail('unsupported_response_type', 'response_type must be "code"');
  if (!q.get('client_id')) return fail('invalid_request', 'client_id is missing');
  if (q.get('aud') !== iss) return fail('invalid_request', `aud must be this server's FHIR base, ${iss}; got ${q.get('aud')}`);
  const topic = launchTopic(q.get('launch') ?? '');
  if (!topic) return fail('invalid_request', 'launch is missing or not one this EHR issued (an EHR launch passes it to the app)');
  if (q.get('code_challenge_method') !== 'S256' || !q.get('code_challenge')) {
    return fail('invalid_request', 'PKCE is required: code_challenge with code_challenge_method=S256');
  }
  // Granted: what is asked among what this server can give (no id_token: no openid, fhirUser).
  const scope = (q.get('scope') ?? '').split(/\s+/).filter((s) => s === 'launch' || /^fhircast\/\S+$/.test(s)).join(' ');
  const code = await sign({
    topic,
    client_id: q.get('client_id'),
    // As sent: the token request must repeat it exactly (RFC 6749 §4.1.3).
    redirect_uri: q.get('redirect_uri'),
    scope,
    challenge: q.get('code_challenge'),
    nonce: b64url(crypto.getRandomValues(new Uint8Array(12))),
    exp: Date.now() + CODE_TTL_MS,
  });
  return back({ code, state: q.get('state') ?? '' });
}

async function token(request, url) {
  const ct = request.headers.get('content-type') ?? '';
  if (!ct.startsWith('application/x-www-form-urlencoded')) {
    return oauthError(400, 'invalid_request', 'the token request is a form (application/x-www-form-urlencoded)');
  }
  const q = new URLSearchParams(await request.text());
  if (q.get('grant_type') !== 'authorization_code') return oauthError(400, 'unsupported_grant_type', 'grant_type must be "authorization_code"');
  const code = await verify(q.get('code') ?? '');
  if (!code) return oauthError(400, 'invalid_grant', 'the code is not one this server issued (or it restarted since)');
  if (Date.now() > code.exp) return oauthError(400, 'invalid_grant', 'the code expired (it is valid for 60 s)');
  if (q.get('redirect_uri') !== code.redirect_uri) return oauthError(400, 'invalid_grant', 'redirect_uri differs from the authorization request');
  if (q.get('client_id') !== code.client_id) return oauthError(400, 'invalid_grant', 'client_id differs from the authorization request');
  const verifier = q.get('code_verifier') ?? '';
  const digest = b64url(await crypto.subtle.digest('SHA-256', enc.encode(verifier)));
  if (digest !== code.challenge) return oauthError(400, 'invalid_grant', 'code_verifier does not match the code_challenge (PKCE)');
  // A code is good for one token (RFC 6749 §4.1.2). Remembered until it would expire anyway.
  if (used.has(code.nonce)) return oauthError(400, 'invalid_grant', 'the code was already used');
  used.set(code.nonce, code.exp);
  for (const [n, exp] of used) if (exp < Date.now()) used.delete(n);
  const access = b64url(crypto.getRandomValues(new Uint8Array(24)));
  return json(200, {
    access_token: access,
    token_type: 'Bearer',
    expires_in: 3600,
    scope: code.scope,
    'hub.url': `${url.origin}/api/hub`,
    'hub.topic': code.topic,
  });
}

export default {
  async fetch(request) {
    const url = new URL(request.url);
    const iss = `${url.origin}/smart/fhir`;
    switch (`${request.method} ${url.pathname}`) {
      case 'GET /smart/fhir/.well-known/smart-configuration':
        return json(200, {
          issuer: iss,
          authorization_endpoint: `${url.origin}/smart/authorize`,
          token_endpoint: `${url.origin}/smart/token`,
          grant_types_supported: ['authorization_code'],
          response_types_supported: ['code'],
          code_challenge_methods_supported: ['S256'],
          token_endpoint_auth_methods_supported: ['none'],
          scopes_supported: ['launch', 'fhircast/*.read', 'fhircast/*.write'],
          capabilities: ['launch-ehr', 'client-public'],
        });
      case 'GET /smart/authorize':
        return authorize(url);
      case 'POST /smart/token':
        return token(request, url);
      default:
        return new Response(
          'the dev SMART server serves GET /smart/fhir/.well-known/smart-configuration, GET /smart/authorize and POST /smart/token',
          { status: 404, headers: { 'content-type': 'text/plain; charset=utf-8' } },
        );
    }
  },
};
