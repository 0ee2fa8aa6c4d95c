// What the embedded app and the viewer share: follow the EHR's context with the SDK, show the
// sync status and every SyncError, and simulate "unsaved work" that refuses a context change
// (409) or asks the user first (202, then a refusal becomes a SyncError: FHIRcast req 75).
import { launchParameters } from './launch.js';
import { renderStatus, logLine, ask, describeContext, syncErrorLine } from './ui.js';

const $ = (id) => document.getElementById(id);

/** The "unsaved work" choice on the page: 'none', 'refuse' or 'ask'. */
const guard = () => document.querySelector('input[name=guard]:checked')?.value ?? 'none';

/**
 * Connects as `subscriberName` to the hub and topic of `tokenResponse` (a SMART launch's) or
 * else of the launch URL, and calls
 * `render(currentContext | null)` whenever what the app should show changes.
 * The page has #banner, #syncerrors (a list), #ask (a dialog) and the guard radio buttons.
 */
export async function followContext({ subscriberName, events, render, tokenResponse }) {
  $('banner').textContent = 'Loading…';
  let client;
  // What the app answers to a context change (open or close), decided by "unsaved work".
  const onContextEvent = (event) => {
    const name = event.event['hub.event'];
    if (guard() === 'refuse') {
      logLine($('log'), `Refused ${name}: unsaved work (answered 409)`);
      return 'refuse';
    }
    if (guard() === 'ask') {
      const target = describeContext({ anchor: name, context: event.event.context });
      logLine($('log'), `Asking the user about ${name} (answered 202)`);
      ask($('ask'), `You have unsaved work. Discard it and follow ${name} (${target})?`).then((yes) => {
        client?.decide(event.id, yes ? 'accept' : 'refuse');
        logLine($('log'), yes ? `Followed ${name} after asking` : `Refused ${name} after asking (a SyncError tells the others)`);
      });
      return 'defer';
    }
    return 'accept';
  };
  const on = Object.fromEntries(events.filter((e) => /-(open|close)$/.test(e)).map((e) => [e, onContextEvent]));
  const options = {
    events,
    subscriberName,
    on,
    onStatusChange: (status) => renderStatus($('banner'), status, client?.currentContext()),
    onSyncError: (e) => logLine($('syncerrors'), syncErrorLine(e, subscriberName), { className: 'syncerror' }),
    onContextChange: (current) => {
      render(current);
      if (client) renderStatus($('banner'), client.status(), current);
    },
  };
  try {
    if (tokenResponse || new URLSearchParams(location.search).has('hub.topic')) {
      // Launched with the hub and topic (a SMART launch): a subscriber of its own.
      const { default: init, FhircastClient } = await import('fhircast-sdk');
      await init(); // loads the WebAssembly module, once
      client = await FhircastClient.fromSmartLaunch(tokenResponse ?? launchParameters(), options);
    } else {
      // Launched bare inside the EHR: through the EHR page's FhircastBridge. No hub URL, no
      // token, no WebSocket and no WebAssembly in this page (fhircast-sdk/embedded).
      const { FhircastClient } = await import('fhircast-sdk/embedded');
      client = await FhircastClient.connectViaParent(options);
    }
  } catch (e) {
    $('banner').textContent = `Cannot follow the session: ${e.message}`;
    $('banner').dataset.state = 'error';
    throw e;
  }
  renderStatus($('banner'), client.status(), client.currentContext());
  render(client.currentContext());
  addEventListener('pagehide', () => client.close());
  window.client = client; // for the browser's console
  return client;
}
