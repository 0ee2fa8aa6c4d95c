// Type declarations of fhircast-sdk/testing: an in-process FHIRcast hub for app tests.
// Requirement numbers (req N) refer to the FHIRcast STU3 specification's requirements.
import type { EventName, FhircastError, WasmSource } from './index.js';

export { FhircastError };

/** Options of {@link createTestHub}. */
export interface TestHubOptions {
  /** The hub's URL, routed in-process (default `http://fhircast.test/api/hub`). */
  url?: string;
  /** The topic apps are expected to use (default: a fresh random one). */
  topic?: string;
  /** How long a subscriber has to answer a notification (default 10 000, the hub's; req 85). */
  ackTimeoutMs?: number;
  /** Route `url` on globalThis's `fetch` and `WebSocket` (default true). */
  install?: boolean;
  /** Where to load the hub's WebAssembly module from (default: next to the entry point). */
  wasm?: WasmSource | Promise<WasmSource>;
}

/** A context entry: `{ key, resource }` (or `{ key, reference }` and the like, req 63). */
export interface ContextEntryInput {
  key: string;
  [field: string]: unknown;
}

/** An event's context: the entries, or an object of key → resource. */
export type ContextInput = ContextEntryInput[] | Record<string, object>;

/** What the hub answered an accepted event (req 78, 108). */
export interface Accepted {
  id: string;
  'context.versionId'?: string;
  duplicate?: true;
}

/**
 * How a simulated app answers a notification: `'accept'` (200), `'refuse'` (409), `'fail'`
 * (500), `'silent'` (never: the hub times it out, req 85), an HTTP status, the same later
 * (`{ status, delayMs }`), or a function of the event returning one of those.
 */
export type Answer =
  | 'accept'
  | 'refuse'
  | 'fail'
  | 'silent'
  | number
  | { status: 'accept' | 'refuse' | 'fail' | number; delayMs?: number };

/** A notification as a simulated app received it. */
export interface ReceivedEvent {
  id: string;
  timestamp: string;
  'hub.topic': string;
  'hub.event': string;
  context: ContextEntryInput[];
  'context.versionId'?: string;
  'context.priorVersionId'?: string;
}

/** What the hub recorded (its timeline, as `GET {hub}/{topic}/timeline` serves it). */
export interface Fact {
  /** `subscribed`, `connected`, `event`, `eventRefused`, `notified`, `answered`, `timedOut`, `closed`, `unsubscribed`, `syncError`, … */
  fact: string;
  at: string;
  topic: string;
  subscriber?: string;
  id?: string;
  event?: string;
  status?: number;
  latencyMs?: number;
  cause?: 'refused' | 'too-long' | 'failed' | 'unresponsive' | 'connection-lost' | 'app';
  [field: string]: unknown;
}

/** Another app on the topic, run by the test hub. */
export interface SimulatedApp {
  readonly name: string | undefined;
  readonly events: EventName[];
  readonly topic: string;
  /** How it answers the next notifications; change it between events. */
  answer: Answer | ((event: ReceivedEvent) => Answer);
  /** Every event it was sent, oldest first. */
  readonly received: ReceivedEvent[];
  /** The SyncErrors it was sent. */
  readonly syncErrors: ReceivedEvent[];
  /** Off the topic: it left, or the hub ended its subscription. A dropped socket is not: it comes back. */
  readonly closed: boolean;
  /** Publishes an event from this app. */
  publish(event: EventName, context?: ContextInput, options?: PublishOptions): Promise<Accepted>;
  /** Leaves the topic (close 1000: an unsubscribe, req 49). */
  leave(): Promise<void>;
}

/** Options of {@link TestHub.publish}. */
export interface PublishOptions {
  /** The event's id (default: random). */
  id?: string;
  topic?: string;
  versionId?: string;
  priorVersionId?: string;
}

/** Options of {@link TestHub.app}. */
export interface AppOptions {
  /** Its `subscriber.name`: how SyncErrors and the roster name it. */
  name?: string;
  /** Default `['Patient-open', 'Patient-close', 'SyncError']`. */
  events?: EventName[];
  /** Default `'accept'`. */
  answer?: Answer | ((event: ReceivedEvent) => Answer);
  topic?: string;
}

/** A subscriber as the roster lists it (`GET {hub}/{topic}/subscribers`). */
export interface RosterEntry {
  /** `subscriber.name`, or "unnamed subscriber #n". */
  name: string;
  events: string[];
  connected: boolean;
  /** Notifications sent to it and not answered yet. */
  awaiting: { id: string; event: string }[];
  /** Its last answer: 200 followed, 202 deciding, 409 refused, … */
  lastAnswer?: { id: string; event: string; status: number };
}

/**
 * The in-process hub: fhircast-core's hub (the Hub's own state machine) behind `url`. Apps
 * connect to it with `FhircastClient.connect({ hubUrl: hub.url, topic: hub.topic, … })`.
 */
export interface TestHub {
  /** The hub's URL (`hub.url`). */
  readonly url: string;
  /** The topic (`hub.topic`). */
  readonly topic: string;
  /** The hub's HTTP API as a `fetch` (what the installed global `fetch` calls for `url`). */
  fetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response>;
  /** Routes `url` on globalThis (done by createTestHub unless `install: false`). */
  install(): this;
  /** Gives globalThis back its own `fetch` and `WebSocket`. */
  uninstall(): void;

  /** Publishes as another app would; rejects with a FhircastError (with `status`) if refused. */
  publish(event: EventName, context?: ContextInput, options?: PublishOptions): Promise<Accepted>;
  /** Adds a simulated app to the topic. */
  app(options?: AppOptions): Promise<SimulatedApp>;

  /** The roster. */
  subscribers(topic?: string): RosterEntry[];
  /** The current context, as get-current-context answers it (req 100-103). */
  currentContext(topic?: string): { 'context.type': string; 'context.versionId'?: string; context: ContextEntryInput[] };
  /** Every recorded fact, oldest first, optionally only those whose fields equal `filter`'s. */
  timeline(filter?: Partial<Fact>): Fact[];
  /** The answers subscriber `name` gave (status and latency). */
  answersOf(name: string): { id: string; event: string; status: number; ms: number }[];
  /** The SyncErrors the hub sent: who could not follow what, and why (`cause`). */
  syncErrors(): Fact[];
  /** Resolves with the first fact matching `filter`; rejects after `timeoutMs` (real time, default 5 000). */
  waitFor(filter: Partial<Fact> | ((fact: Fact) => boolean), options?: { timeoutMs?: number }): Promise<Fact>;

  /** Drops the socket of subscriber `name` (default: every app under test's) as a network failure: close 1006. Resolves with how many. */
  dropSocket(name?: string): Promise<number>;
  /** Ends the lease of subscriber `name` (default: every app under test's) now (req 56). Resolves with how many. */
  expireLease(name?: string): Promise<number>;
  /** Restarts the hub: state kept, every socket dropped (1006); apps must reconnect. Resolves with how many sockets dropped. */
  restart(): Promise<number>;
  /** A SyncError from app `from` about the last context change (or `eventId`/`eventName`), relayed by the hub (req 75). */
  syncError(options?: { from?: string; diagnostics?: string; eventId?: string; eventName?: EventName; topic?: string }): Promise<Accepted>;
  /** Closes every socket (1001), stops the hub's timers and uninstalls it. */
  close(): Promise<void>;
}

/** Starts an in-process hub (loading its WebAssembly module on first use). */
export function createTestHub(options?: TestHubOptions): Promise<TestHub>;
