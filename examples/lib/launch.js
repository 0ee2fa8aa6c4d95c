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

/** What an app was launched with, shaped like a SMART token response. */
export function launchParameters() {
  const q = new URLSearchParams(location.search);
  const tokenResponse = { 'hub.url': q.get('hub.url') ?? HUB_URL, 'hub.topic': q.get('hub.topic') };
  if (q.get('access_token')) tokenResponse.access_token = q.get('access_token');
  return tokenResponse;
}
