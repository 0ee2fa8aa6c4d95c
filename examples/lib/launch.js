// Where the hub is and which session (topic) to follow.
//
// The EHR picks the topic: a fresh one per visit, or the one in its URL (?topic=...), so two
// people trying the examples on one hub do not collide. Apps get the hub and the topic in their
// launch URL (?hub.url=...&hub.topic=...), as a SMART launch's token response would carry them
// (FHIRcast req 7).

/** The hub served with these pages (same origin). */
export const HUB_URL = `${location.origin}/api/hub`;

/** A new session id: unguessable, URL-safe. */
export function freshTopic() {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  return `session-${Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')}`;
}

/** The topic in this page's URL (?topic=), or a fresh one written into the URL. */
export function topicFromUrl() {
  const url = new URL(location.href);
  let topic = url.searchParams.get('topic');
  if (!topic) {
    topic = freshTopic();
    url.searchParams.set('topic', topic);
    history.replaceState(null, '', url);
  }
  return topic;
}

/** An app's launch URL: what an EHR hands it through SMART (hub.url, hub.topic). */
export function launchUrl(appPath, topic, hubUrl = HUB_URL) {
  const q = new URLSearchParams({ 'hub.url': hubUrl, 'hub.topic': topic });
  return `${appPath}?${q}`;
}

/** The FHIR base of the dev SMART authorization server `make dev` serves (scripts/smart-dev-worker.js). */
export const SMART_ISS = `${location.origin}/smart/fhir`;

/**
 * An EHR launch of a SMART app (SMART App Launch: `iss` and `launch` on the app's launch URL).
 * `launch` names the session: the authorization server puts it into the token response as
 * `hub.topic`, with `hub.url` (FHIRcast req 7).
 */
export function smartLaunchUrl(launchPath, topic) {
  const launch = btoa(JSON.stringify({ topic })).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  return `${launchPath}?${new URLSearchParams({ iss: SMART_ISS, launch })}`;
}

/**
 * What an app was launched with, shaped like a SMART token response.
 *
 * An `access_token` in the URL is passed on only with a hub on this page's own origin: the URL
 * also names the hub, so a crafted link could otherwise make the app send its token to any
 * host. (A real SMART app gets hub.url, hub.topic and the token from the EHR's token endpoint,
 * not from its URL.)
 */
export function launchParameters() {
  const q = new URLSearchParams(location.search);
  const hubUrl = q.get('hub.url') ?? HUB_URL;
  const tokenResponse = { 'hub.url': hubUrl, 'hub.topic': q.get('hub.topic') };
  const token = q.get('access_token');
  if (token) {
    let sameOrigin = false;
    try {
      sameOrigin = new URL(hubUrl, location.href).origin === location.origin;
    } catch {}
    if (sameOrigin) tokenResponse.access_token = token;
    else console.warn(`launch: the access_token in this page's URL is not sent to ${hubUrl}, a hub on another origin than this page's`);
  }
  return tokenResponse;
}

/**
 * The token response of a SMART launch that came back to this page (?code=…&state=…, or a
 * reload after one: fhirclient keeps its state in sessionStorage), or null when the page was not
 * launched through SMART. fhirclient (SMART's JavaScript client) exchanges the code at the token
 * endpoint, with the PKCE verifier it kept; it is loaded only then.
 */
export async function smartTokenResponse() {
  const q = new URLSearchParams(location.search);
  if (q.has('hub.topic') || !(q.has('code') || q.has('error') || sessionStorage.getItem('SMART_KEY'))) return null;
  await new Promise((resolve, reject) => {
    const s = document.createElement('script');
    s.src = '/vendor/fhir-client.min.js';
    s.onload = resolve;
    s.onerror = () => reject(new Error('could not load /vendor/fhir-client.min.js'));
    document.head.append(s);
  });
  const smart = await globalThis.FHIR.oauth2.ready();
  return smart.state.tokenResponse;
}
