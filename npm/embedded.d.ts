// `import { FhircastClient } from 'fhircast-sdk/embedded'`: the client of an app embedded in an
// EHR page that runs a `FhircastBridge`: no hub URL, token or WebSocket in the iframe, and no
// WebAssembly to load.
import type {
  CurrentContext,
  EventHandler,
  EventName,
  FhircastClient as HubClient,
  FhircastErrorCode,
  SyncErrorDetails,
  SyncStatus,
} from './index.js';

export interface ConnectViaParentOptions {
  /** The events to subscribe to; defaults to the names given in `on`. */
  events?: EventName[];
  /** This app's name in SyncErrors and the hub's roster. */
  subscriberName?: string;
  /** Handlers registered before the subscription starts (replayed events reach them). */
  on?: Partial<Record<EventName | '*', EventHandler>>;
  onSyncError?: (details: SyncErrorDetails) => void;
  onStatusChange?: (status: SyncStatus) => void;
  onContextChange?: (context: CurrentContext | null) => void;
  /** How long to wait for the parent's bridge (default 3000 ms). */
  timeoutMs?: number;
}

/** As the main entry's, plus `no-bridge`: no bridge answered (not embedded, or origin not allowed). */
export declare class FhircastError extends Error {
  name: 'FhircastError';
  code: FhircastErrorCode | 'no-bridge' | 'other';
  status?: number;
}

/**
 * The same API as the main entry's `FhircastClient` (`on`, `publish`, `update`, `select`,
 * `decide`, `currentContext`, `status`, `onSyncError`, …, documented there), through the parent
 * page's bridge; `topic` is known once connected.
 */
export interface FhircastClient extends Omit<HubClient, 'topic'> {
  readonly topic: string | undefined;
}

export declare const FhircastClient: {
  /** Connects through the parent page's `FhircastBridge`; rejects with code `no-bridge` when none answers. */
  connectViaParent(options: ConnectViaParentOptions): Promise<FhircastClient>;
};
