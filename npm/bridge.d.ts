// `import { FhircastBridge } from 'fhircast-sdk/bridge'`: the EHR page's side of embedded apps
// (iframes using `fhircast-sdk/embedded`). Needs the main entry's `init()` first.
import type { AccessToken } from './index.js';

export interface FhircastBridgeOptions {
  /** The hub (`hub.url`): never given to an embedded app. */
  hubUrl: string;
  /** The session (`hub.topic`). */
  topic: string;
  /** The EHR's token: never given to an embedded app. */
  accessToken?: AccessToken;
  /** The origins whose iframes may connect, e.g. `['https://viewer.example']` (no `*`). */
  allowedOrigins: string[];
  /** Where refused origins (warn) and arrivals and departures (info) are logged; `console` by default. */
  log?: { warn(...args: unknown[]): void; info?(...args: unknown[]): void };
}

/**
 * Accepts embedded apps over `postMessage` from the allowed origins and holds a subscription for
 * each with the app's own `subscriber.name` and events: the hub sees each app as its own
 * subscriber. An iframe that is removed or navigates away is unsubscribed (close 1000).
 */
export declare class FhircastBridge {
  constructor(options: FhircastBridgeOptions);
  /** Starts accepting apps; returns the bridge. */
  start(): this;
  /** The apps connected through it. */
  apps(): { subscriberName?: string; origin: string; state: 'connecting' | 'in-sync' | 'out-of-sync' | 'disconnected' }[];
  /** Stops accepting apps and ends every bridged subscription. */
  close(): Promise<void>;
}
