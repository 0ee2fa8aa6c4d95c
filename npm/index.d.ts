// Type declarations of fhircast-sdk (FHIRcast 3.0.0 / STU3 subscriber SDK for browsers).
// Requirement numbers (req N) refer to the FHIRcast STU3 specification's requirements.

/** Where the WebAssembly module is loaded from (default: next to the package's JS). */
export type WasmSource = string | URL | Request | Response | BufferSource | WebAssembly.Module;

/**
 * Loads the WebAssembly module. Await it once before using {@link FhircastClient}; calling
 * the client earlier throws an Error that says so. Calling it again returns the same promise.
 */
export default function init(wasm?: WasmSource | Promise<WasmSource>): Promise<void>;

/** The events defined by FHIRcast STU3 (names compare case-insensitively, req 34). */
export type StandardEventName =
  | 'Patient-open'
  | 'Patient-close'
  | 'Encounter-open'
  | 'Encounter-close'
  | 'ImagingStudy-open'
  | 'ImagingStudy-close'
  | 'DiagnosticReport-open'
  | 'DiagnosticReport-close'
  | 'DiagnosticReport-update'
  | 'DiagnosticReport-select'
  | 'SyncError'
  | 'UserLogout'
  | 'UserHibernate'
  | 'Home-open';

/** The FHIR resource types an event name may start with (req 134; the core's table). */
export type ResourceType =
  | 'Account' | 'ActivityDefinition' | 'AdverseEvent' | 'AllergyIntolerance' | 'Appointment'
  | 'AppointmentResponse' | 'AuditEvent' | 'Basic' | 'Binary' | 'BiologicallyDerivedProduct'
  | 'BodyStructure' | 'Bundle' | 'CapabilityStatement' | 'CarePlan' | 'CareTeam' | 'CatalogEntry'
  | 'ChargeItem' | 'ChargeItemDefinition' | 'Claim' | 'ClaimResponse' | 'ClinicalImpression'
  | 'CodeSystem' | 'Communication' | 'CommunicationRequest' | 'CompartmentDefinition'
  | 'Composition' | 'ConceptMap' | 'Condition' | 'Consent' | 'Contract' | 'Coverage'
  | 'CoverageEligibilityRequest' | 'CoverageEligibilityResponse' | 'DetectedIssue' | 'Device'
  | 'DeviceDefinition' | 'DeviceMetric' | 'DeviceRequest' | 'DeviceUseStatement'
  | 'DiagnosticReport' | 'DocumentManifest' | 'DocumentReference' | 'EffectEvidenceSynthesis'
  | 'Encounter' | 'Endpoint' | 'EnrollmentRequest' | 'EnrollmentResponse' | 'EpisodeOfCare'
  | 'EventDefinition' | 'Evidence' | 'EvidenceVariable' | 'ExampleScenario'
  | 'ExplanationOfBenefit' | 'FamilyMemberHistory' | 'Flag' | 'Goal' | 'GraphDefinition'
  | 'Group' | 'GuidanceResponse' | 'HealthcareService' | 'ImagingSelection' | 'ImagingStudy'
  | 'Immunization' | 'ImmunizationEvaluation' | 'ImmunizationRecommendation'
  | 'ImplementationGuide' | 'InsurancePlan' | 'Invoice' | 'Library' | 'Linkage' | 'List'
  | 'Location' | 'Measure' | 'MeasureReport' | 'Media' | 'Medication'
  | 'MedicationAdministration' | 'MedicationDispense' | 'MedicationKnowledge'
  | 'MedicationRequest' | 'MedicationStatement' | 'MedicinalProduct'
  | 'MedicinalProductAuthorization' | 'MedicinalProductContraindication'
  | 'MedicinalProductIndication' | 'MedicinalProductIngredient' | 'MedicinalProductInteraction'
  | 'MedicinalProductManufactured' | 'MedicinalProductPackaged'
  | 'MedicinalProductPharmaceutical' | 'MedicinalProductUndesirableEffect' | 'MessageDefinition'
  | 'MessageHeader' | 'MolecularSequence' | 'NamingSystem' | 'NutritionOrder' | 'Observation'
  | 'ObservationDefinition' | 'OperationDefinition' | 'OperationOutcome' | 'Organization'
  | 'OrganizationAffiliation' | 'Parameters' | 'Patient' | 'PaymentNotice'
  | 'PaymentReconciliation' | 'Person' | 'PlanDefinition' | 'Practitioner' | 'PractitionerRole'
  | 'Procedure' | 'Provenance' | 'Questionnaire' | 'QuestionnaireResponse' | 'RelatedPerson'
  | 'RequestGroup' | 'ResearchDefinition' | 'ResearchElementDefinition' | 'ResearchStudy'
  | 'ResearchSubject' | 'RiskAssessment' | 'RiskEvidenceSynthesis' | 'Schedule'
  | 'SearchParameter' | 'ServiceRequest' | 'Slot' | 'Specimen' | 'SpecimenDefinition'
  | 'StructureDefinition' | 'StructureMap' | 'Subscription' | 'Substance'
  | 'SubstanceNucleicAcid' | 'SubstancePolymer' | 'SubstanceProtein'
  | 'SubstanceReferenceInformation' | 'SubstanceSourceMaterial' | 'SubstanceSpecification'
  | 'SupplyDelivery' | 'SupplyRequest' | 'Task' | 'TerminologyCapabilities' | 'TestReport'
  | 'TestScript' | 'ValueSet' | 'VerificationResult' | 'VisionPrescription';

/** What happens to a resource in a `<Resource>-<action>` event (req 134). */
export type EventAction = 'open' | 'close' | 'update' | 'select';

/**
 * An event name: a standard one, any `<FHIR resource type>-open|close|update|select`, or a
 * reverse-domain name for proprietary events (req 134-135, e.g. `com.example.Scan-done`; they
 * contain a dot). Wildcards are not allowed. A misspelt name (`'Patient-opn'`) is a type error.
 * Names compare case-insensitively at run time (req 34); the types accept the canonical case.
 */
export type EventName =
  | StandardEventName
  | `${ResourceType}-${EventAction}`
  | 'SyncError'
  | 'UserLogout'
  | 'UserHibernate'
  | `${string}.${string}`;

/** A FHIR resource: any JSON object with a `resourceType` (full resources are kept, req 66). */
export interface Resource {
  resourceType: string;
  id?: string;
  [field: string]: unknown;
}

/** A FHIR Reference. */
export interface Reference {
  reference: string;
  [field: string]: unknown;
}

/**
 * One named item of an event's context (req 62): a resource, a reference, or extension data;
 * exactly one of `resource`, `reference` and `data` is present. One type with optional members
 * (not a union) so that `context.find((c) => c.key === 'patient')?.resource` type-checks.
 */
export interface ContextEntry {
  key: string;
  resource?: Resource;
  reference?: Reference;
  data?: Record<string, unknown>;
}

/** A notification as the hub sent it (req 59-62), handed to the event's handler. */
export interface FhircastEvent {
  /** The resource of the context entry `key`, e.g. `event.resource('patient')`. */
  resource(key: string): Resource | undefined;
  /** When the event occurred (ISO 8601). */
  timestamp: string;
  /** The event's id (req 60). */
  id: string;
  event: {
    'hub.topic': string;
    'hub.event': EventName;
    context: ContextEntry[];
    /** The anchor's version after this event, for content sharing (req 61, 109). */
    'context.versionId'?: string;
    /** The anchor's version before this update (req 110). */
    'context.priorVersionId'?: string;
  };
}

/**
 * What a handler returns decides the answer to the hub (req 71, 75):
 * - `undefined`, `true`, `'accept'`: followed (200);
 * - `false`, `'refuse'`: will not follow (409);
 * - `'defer'`: not decided yet (202) — decide later with {@link FhircastClient.decide};
 * - `'fail'`, or throwing: could not process it (500);
 * - a Promise of one of these: the SDK answers 202 if it has not settled after 3 s, and
 *   refuses with a SyncError (req 75, 94) if it has not settled 10 s after receipt.
 */
export type HandlerResult = void | undefined | boolean | 'accept' | 'refuse' | 'defer' | 'fail';
export type EventHandler = (event: FhircastEvent) => HandlerResult | Promise<HandlerResult>;

/** What the app should show: the current anchor and its context. */
export interface CurrentContext {
  /** The resource of the context entry `key`, e.g. `client.currentContext()?.resource('patient')`. */
  resource(key: string): Resource | undefined;
  /** The anchor, `"Type/id"`, e.g. `"Patient/p1"`. */
  anchor: string;
  /** The open event that set it, e.g. `"Patient-open"`. */
  event: EventName;
  /** The context array of that open event. */
  context: ContextEntry[];
  /** The anchor's `context.versionId`, when the hub shares content (req 108). */
  versionId?: string;
  /** The id of the open event, when it arrived as a notification. */
  eventId?: string;
  /** When the open occurred, when known. */
  timestamp?: string;
  /**
   * The anchor's shared resources (content sharing, req 105-117): what the hub's content for
   * it holds, kept by the SDK from get-current-context and every `*-update` the app accepted.
   * Present when the app follows the anchor's `<Type>-update` event and the content is known;
   * absent while it is being read again (after a missed update, or when an anchor opened before
   * this app knew its content becomes current: the status is then not in sync).
   */
  resources?: Resource[];
}

/** Why the app is out of sync or disconnected. */
export type SyncReason =
  | { kind: 'sync-error'; message: string; eventId: string; eventName: string; subscriberName: string }
  | { kind: 'own-event-not-followed'; message: string; eventId: string; eventName: string; subscriberName: string }
  | { kind: 'refused'; message: string; eventId: string; eventName: string }
  | { kind: 'deciding'; message: string; eventId: string; eventName: string }
  | { kind: 'version-gap'; message: string; anchor: string }
  | { kind: 'resync-failed'; message: string }
  | { kind: 'disconnected'; message: string }
  | { kind: 'other'; message: string };

/**
 * Whether the app shows what the hub holds:
 * - `connecting`: subscribing, or connected and reading the current context;
 * - `in-sync`: the app shows the hub's current context;
 * - `out-of-sync`: it may show something else (`reason` says what happened);
 * - `disconnected`: no connection; the SDK reconnects by itself unless closed.
 */
export type SyncStatus =
  | { state: 'connecting'; reason?: undefined }
  | { state: 'in-sync'; reason?: undefined }
  | { state: 'out-of-sync'; reason: SyncReason }
  | { state: 'disconnected'; reason: SyncReason & { kind: 'disconnected' } };

export type SyncState = SyncStatus['state'];

/** A SyncError received: some app could not follow an event (req 84-96). */
export interface SyncErrorDetails {
  /** The SyncError notification's id. */
  id: string;
  /** The id of the event that was not followed. */
  eventId: string;
  /** Its name. */
  eventName: string;
  /** The app that could not follow it. */
  subscriberName: string;
  /** Why, for people. */
  diagnostics: string;
  /** The OperationOutcome issue code: `processing`, or `too-long` for a timeout. */
  code: string;
  /** Whether the event was one this app sent; if so the SDK resends it (req 81). */
  ownEvent: boolean;
}

/** The bearer token: a string, or a function called before every HTTP request (req 19). */
export type AccessToken = string | (() => string | Promise<string>);

export interface ConnectOptions {
  /** The hub's URL (`hub.url`), e.g. `"https://ehr.example/api/hub"`. */
  hubUrl: string;
  /** The session to follow (`hub.topic`). */
  topic: string;
  /** The events to subscribe to (req 29); defaults to the names given in `on`. */
  events?: EventName[] | string;
  /** This app's name in SyncErrors (req 32, 92). */
  subscriberName?: string;
  /** Sent as `Authorization: Bearer` on every request. */
  accessToken?: AccessToken;
  /** The lease asked for (req 30); the SDK renews it at 80% of what the hub grants (req 57). */
  leaseSeconds?: number;
  /**
   * Handlers registered before the subscription starts, so that none of the events the hub
   * replays on connecting (req 44) can arrive before its handler.
   */
  on?: Partial<Record<EventName | '*', EventHandler>>;
  onSyncError?: (details: SyncErrorDetails) => void;
  onStatusChange?: (status: SyncStatus) => void;
  onContextChange?: (context: CurrentContext | null) => void;
}

/** The part of a SMART launch's token response FHIRcast uses (req 7). */
export interface SmartTokenResponse {
  access_token?: string;
  'hub.url'?: string;
  'hub.topic'?: string;
  [field: string]: unknown;
}

/** Content changes for {@link FhircastClient.update}. */
export interface ContentChanges {
  /** Resources to add or replace (each needs `resourceType` and `id`, req 116, 120). */
  put?: Resource[];
  /** Resources to remove, as `"Type/id"`. */
  delete?: string[];
}

/**
 * What kind of failure a {@link FhircastError} is:
 * - `option`, `argument`: a connect option or a method's argument is unusable (the message says which);
 * - `http`: the hub answered with an error `status` (the message names the URL and the likely cause);
 * - `network`: no answer (the hub is not running at that URL, or refused this page's origin: CORS);
 * - `denied`: the hub denied or ended the subscription (req 46-48);
 * - `closed-early`: the WebSocket closed before the hub confirmed the subscription;
 * - `token`: the `accessToken` function failed or returned something other than a string;
 * - `closed`: the client was closed;
 * - `not-initialized`: `init()` has not finished; `unsupported-runtime`: no global `WebSocket`.
 */
export type FhircastErrorCode =
  | 'option'
  | 'argument'
  | 'http'
  | 'network'
  | 'denied'
  | 'closed-early'
  | 'token'
  | 'closed'
  | 'not-initialized'
  | 'unsupported-runtime';

/**
 * Every error the SDK throws or rejects with: `e instanceof FhircastError`, `e.code`, and
 * `e.status` (the hub's HTTP status) when there was one.
 */
export declare class FhircastError extends Error {
  name: 'FhircastError';
  code: FhircastErrorCode;
  status?: number;
}

/** A function that removes the handler or listener it was returned for. */
export type Remover = () => void;

/** A FHIRcast subscriber: one subscription to one topic, followed over a WebSocket. */
export declare class FhircastClient {
  private constructor();

  /**
   * Subscribes (req 24-32), opens the WebSocket and resolves once the hub confirmed the
   * subscription (req 43). Rejects with a {@link FhircastError} if the hub refuses or cannot be
   * reached. After that, lost connections are re-established by the SDK.
   */
  static connect(options: ConnectOptions): Promise<FhircastClient>;

  /**
   * Connects with a SMART launch's token response (`hub.url`, `hub.topic`, `access_token`).
   * `options` must at least name the `events` (or give `on` handlers).
   */
  static fromSmartLaunch(
    tokenResponse: SmartTokenResponse,
    options: Omit<ConnectOptions, 'hubUrl' | 'topic'> & Partial<Pick<ConnectOptions, 'hubUrl' | 'topic'>>,
  ): Promise<FhircastClient>;

  /** The topic this client follows. */
  readonly topic: string;

  /** Sets the handler of `eventName` (one per event; '*' for any other). */
  on(eventName: EventName | '*', handler: EventHandler): Remover;
  onSyncError(callback: (details: SyncErrorDetails) => void): Remover;
  onStatusChange(callback: (status: SyncStatus) => void): Remover;
  /** Called whenever what the app should show changes (an accepted event, a resync, an own event). */
  onContextChange(callback: (context: CurrentContext | null) => void): Remover;

  /**
   * Sends an event (req 76). Resolves with its id once the hub accepted it and its echo arrived
   * (req 80); rejects with the hub's reason if it refused it.
   */
  publish(eventName: EventName, context: ContextEntry[]): Promise<string>;

  /** Shares content (req 107-117): a `<Type>-update` of `anchor` ("Type/id") with the tracked version. */
  update(anchor: string, changes: ContentChanges): Promise<string>;

  /**
   * Selects resources in the current anchor (req 115, 121); `[]` clears the selection. Rejects,
   * without sending, if `anchor` is not the current context (req 119).
   */
  select(anchor: string, references: string[]): Promise<string>;

  /** Decides about an event whose handler returned `'defer'` (req 75). */
  decide(eventId: string, outcome: 'accept' | 'refuse' | 'fail'): void;

  /** What the app should show, or null. */
  currentContext(): CurrentContext | null;

  /** Whether the app shows what the hub holds. */
  status(): SyncStatus;

  /** Unsubscribes (req 49-50), closes the WebSocket with code 1000 and stops all timers. */
  close(): Promise<void>;
}
