// fhircast-sdk/react: hooks for React 18 and 19.
import type { ConnectOptions, CurrentContext, FhircastClient, FhircastError, SyncStatus } from './index.js';

export interface UseFhircast {
  /** The connected client, or null while connecting (or after a failure). */
  client: FhircastClient | null;
  /** What the app should show; re-rendered on every change. */
  context: CurrentContext | null;
  /** Whether the app shows what the hub holds; re-rendered on every change. */
  status: SyncStatus;
  /** Why connecting failed, if it did. */
  error: FhircastError | null;
}

/**
 * Connects while the component is mounted (and calls `init()`). The subscription — hub, topic,
 * events, name and the event names in `on` — is made again when it changes; handlers and
 * listeners may change on every render (the latest are called). Components asking for the same
 * subscription share one client; StrictMode's double mount makes one subscription. Unmounting
 * the last of them unsubscribes and closes with 1000.
 */
export declare function useFhircast(options: ConnectOptions): UseFhircast;

/** `client.currentContext()`, re-rendered on every change; null without a client. */
export declare function useFhircastContext(client: FhircastClient | null): CurrentContext | null;

/** `client.status()`, re-rendered on every change; `connecting` without a client. */
export declare function useSyncStatus(client: FhircastClient | null): SyncStatus;
