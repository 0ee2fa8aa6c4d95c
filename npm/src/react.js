// fhircast-sdk/react: hooks for React 18 and 19. Built by scripts/build-sdk.sh into
// pkg/react.js, next to pkg/index.js, which it imports as './index.js' (the same module an app
// gets from 'fhircast-sdk', so `init()` and the clients are shared). Types: ../react.d.ts.
//
//   const { client, context, status, error } = useFhircast({ hubUrl, topic, events, on });
//
// StrictMode mounts, unmounts and mounts again every component in development: a client is
// shared by the components that ask for the same subscription and closed one tick after the
// last of them unmounts, so that double mount makes one subscription, not two.
import { useEffect, useRef, useState } from 'react';
import init, { FhircastClient } from './index.js';

/** Live clients by subscription: { promise, users, closing }. */
const clients = new Map();

function keyOf(o) {
  const events = Array.isArray(o.events) ? o.events.join(',') : (o.events ?? '');
  return [o.hubUrl, o.topic, events, o.subscriberName ?? '', Object.keys(o.on ?? {}).join(',')].join('\n');
}

function acquire(key, connect) {
  let entry = clients.get(key);
  if (entry) {
    clearTimeout(entry.closing);
    entry.users++;
    return entry;
  }
  entry = { users: 1, closing: undefined, promise: connect() };
  clients.set(key, entry);
  // A failed connect is not kept: the next mount tries again.
  entry.promise.catch(() => clients.get(key) === entry && clients.delete(key));
  return entry;
}

function release(key, entry) {
  if (--entry.users > 0) return;
  entry.closing = setTimeout(() => {
    if (clients.get(key) === entry) clients.delete(key);
    entry.promise.then((c) => c.close(), () => {});
  });
}

/**
 * Connects while the component is mounted. `options` are `FhircastClient.connect`'s; the
 * subscription (hub, topic, events, name, the names in `on`) is read when it changes, the
 * handlers and listeners on every render (the latest ones are called). `init()` is called for
 * you. Returns the client (null until connected), what it should show, its status, and the
 * connect error if any.
 */
export function useFhircast(options) {
  const latest = useRef(options);
  latest.current = options;
  const key = keyOf(options);
  const [state, setState] = useState({ key: null, client: null, error: null });
  useEffect(() => {
    let live = true;
    const o = latest.current;
    const entry = acquire(key, async () => {
      await init();
      // Handlers and listeners that call the latest render's functions.
      const on = Object.fromEntries(Object.keys(o.on ?? {}).map((n) => [n, (e) => latest.current.on?.[n]?.(e)]));
      const listen = (name) => (v) => latest.current[name]?.(v);
      return FhircastClient.connect({
        ...o,
        on,
        onSyncError: listen('onSyncError'),
        onStatusChange: listen('onStatusChange'),
        onContextChange: listen('onContextChange'),
      });
    });
    entry.promise.then(
      (client) => live && setState({ key, client, error: null }),
      (error) => live && setState({ key, client: null, error }),
    );
    return () => {
      live = false;
      release(key, entry);
    };
  }, [key]);
  const client = state.key === key ? state.client : null;
  return { client, error: state.key === key ? state.error : null, context: useFhircastContext(client), status: useSyncStatus(client) };
}

/** What `client` says the app should show, re-rendered on every change (null without a client). */
export function useFhircastContext(client) {
  return useWatched(client, (c) => c.currentContext(), (c, f) => c.onContextChange(f), null);
}

/** `client.status()`, re-rendered on every change (`connecting` without a client). */
export function useSyncStatus(client) {
  return useWatched(client, (c) => c.status(), (c, f) => c.onStatusChange(f), CONNECTING);
}

const CONNECTING = { state: 'connecting' };

function useWatched(client, read, watch, none) {
  const [value, setValue] = useState(() => (client ? read(client) : none));
  useEffect(() => {
    if (!client) return setValue(none);
    setValue(read(client));
    return watch(client, setValue);
  }, [client]);
  return value;
}
