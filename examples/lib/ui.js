// Small UI helpers shared by the example apps: the sync banner, the "unsaved work" dialog, and
// reading a FHIRcast context array.
import { displayName } from './data.js';

/** The resource under `key` in a context array (e.g. 'patient', 'study', 'report'). */
export const resourceOf = (context, key) => context?.find((c) => c.key === key)?.resource;

/** "Lovelace, Ada · CT chest with contrast" for a current context ("Nothing open" for none; "" for a context without an anchor, e.g. UserLogout's). */
export function describeContext(current) {
  if (!current) return 'Nothing open';
  const p = resourceOf(current.context, 'patient');
  const s = resourceOf(current.context, 'study');
  const r = resourceOf(current.context, 'report');
  return [p && displayName(p), s?.description, r?.code?.text].filter(Boolean).join(' · ') || current.anchor || '';
}

/**
 * Shows the SDK's sync status (`{state, reason}`) in a banner, short, in the user's terms:
 * whether this app shows what the others show, and which patient; when not, who did not follow
 * what. `current` is what the app shows (client.currentContext()).
 */
export function renderStatus(el, status, current = null) {
  const r = status.reason;
  const text = {
    connecting: () => 'Connecting…',
    'in-sync': () => `In sync · ${describeContext(current)}`,
    disconnected: () => 'Connection to the hub lost: reconnecting; this page may be out of date',
    'out-of-sync': () => {
      switch (r?.kind) {
        case 'sync-error':
          return `Out of sync: ${r.subscriberName} did not follow ${r.eventName}`;
        case 'own-event-not-followed':
          return `Out of sync: ${r.subscriberName} did not follow your ${r.eventName}`;
        case 'refused':
          return `Out of sync: you kept your work and did not follow ${r.eventName}`;
        case 'deciding':
          return `Waiting for your decision about ${r.eventName}`;
        default:
          return `Out of sync: ${r?.message ?? 'unknown reason'}`;
      }
    },
  }[status.state];
  el.textContent = text ? text() : status.state;
  el.title = r?.message ?? '';
  el.dataset.state = status.state;
  el.dataset.reason = r?.kind ?? '';
}

/** A SyncError as a line of the app's list: in the second person when it is this app's own. */
export function syncErrorLine(e, ownName) {
  return e.subscriberName === ownName
    ? `You did not follow ${e.eventName}; the other apps were told`
    : `${e.subscriberName} did not follow ${e.eventName}: ${e.diagnostics}`;
}

/**
 * Asks the user a yes/no question in a modal dialog; resolves true for `yes`.
 * `dialog` is a <dialog> with a <p>, and buttons value="yes" and value="no" in a method=dialog form.
 */
export function ask(dialog, question) {
  dialog.querySelector('p').textContent = question;
  dialog.showModal();
  return new Promise((resolve) => dialog.addEventListener('close', () => resolve(dialog.returnValue === 'yes'), { once: true }));
}

/** Appends a line to a list, newest first, keeping `max` lines. */
export function logLine(list, text, { max = 20, className } = {}) {
  const li = document.createElement('li');
  li.textContent = `${new Date().toLocaleTimeString()} ${text}`;
  if (className) li.className = className;
  list.prepend(li);
  while (list.children.length > max) list.lastChild.remove();
  return li;
}
