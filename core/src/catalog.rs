//! The event catalog (req §3, 134-136): event names, their kinds, and the context each carries.
//!
//! Names compare case-insensitively (req 34) and are sent in their canonical spelling
//! (`Patient-open`, `SyncError`): strict in what we send. Any `<FHIR resource>-(open|close|
//! update|select)` is a valid name ("FHIRcast supports all events that follow this format");
//! the catalogued ones get exact context rules, the others the generic rules of their kind.
//! Proprietary events use reverse-domain names without `-` (req 135) and carry any context.

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What an event does, which decides how a Hub treats it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    /// `<Resource>-open`: a context is opened and becomes current (req 122-123).
    Open,
    /// `<Resource>-close`: an open context is closed (req 124).
    Close,
    /// `<Resource>-update`: content of an open anchor changes (req 107-121).
    Update,
    /// `<Resource>-select`: items in the current anchor are selected (req 115, 121).
    Select,
    /// `SyncError` (req 84-96).
    SyncError,
    /// `UserLogout` (req 129-130).
    UserLogout,
    /// `UserHibernate` (req 131).
    UserHibernate,
    /// `Home-open`: the user is on a screen with no context (req 128).
    HomeOpen,
    /// The legacy `heartbeat` (not in STU3; req 133), only when a Hub enables it.
    Heartbeat,
    /// A proprietary, reverse-domain event (req 135).
    Custom,
}

/// A FHIRcast event name, validated, compared case-insensitively, shown canonically.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventName {
    canonical: String,
    kind: EventKind,
    resource: Option<&'static str>,
}

/// Why a string is not an event name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EventNameError {
    /// Empty.
    #[error("an event name is empty")]
    Empty,
    /// `*` or `*-open`: wildcards are not supported with a Hub (req 36, neg 6).
    #[error("{0:?}: wildcards are not supported in hub.events; name each event (req 36, neg 6)")]
    Wildcard(String),
    /// `<X>-<action>` where X is not a FHIR resource type.
    #[error("{name:?}: {resource:?} is not a FHIR R4 resource type (req 134)")]
    UnknownResource {
        /// The name.
        name: String,
        /// The part before `-`.
        resource: String,
    },
    /// `<Resource>-<action>` where action is not open, close, update or select.
    #[error("{name:?}: {action:?} is not one of open, close, update, select (req 134)")]
    UnknownAction {
        /// The name.
        name: String,
        /// The part after `-`.
        action: String,
    },
    /// Neither a standard pattern nor a reverse-domain name.
    #[error("{0:?} is not a FHIRcast event name: expected <Resource>-open|close|update|select, SyncError, UserLogout, UserHibernate, Home-open, or a reverse-domain name without '-' (req 134-135)")]
    Malformed(String),
}

impl EventName {
    /// Parses a name, case-insensitively (req 34).
    pub fn parse(s: &str) -> Result<EventName, EventNameError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(EventNameError::Empty);
        }
        if s.contains('*') {
            return Err(EventNameError::Wildcard(s.to_owned()));
        }
        let lower = s.to_ascii_lowercase();
        let fixed = |canonical: &str, kind| Ok(EventName { canonical: canonical.to_owned(), kind, resource: None });
        match lower.as_str() {
            "syncerror" => return fixed("SyncError", EventKind::SyncError),
            "userlogout" => return fixed("UserLogout", EventKind::UserLogout),
            "userhibernate" => return fixed("UserHibernate", EventKind::UserHibernate),
            "home-open" => return fixed("Home-open", EventKind::HomeOpen),
            "heartbeat" => return fixed("heartbeat", EventKind::Heartbeat),
            _ => {}
        }
        if let Some((resource, action)) = s.rsplit_once('-') {
            let kind = match action.to_ascii_lowercase().as_str() {
                "open" => EventKind::Open,
                "close" => EventKind::Close,
                "update" => EventKind::Update,
                "select" => EventKind::Select,
                _ => return Err(EventNameError::UnknownAction { name: s.to_owned(), action: action.to_owned() }),
            };
            let Some(rt) = resource_type(resource) else {
                return Err(EventNameError::UnknownResource { name: s.to_owned(), resource: resource.to_owned() });
            };
            let action = match kind {
                EventKind::Open => "open",
                EventKind::Close => "close",
                EventKind::Update => "update",
                _ => "select",
            };
            return Ok(EventName { canonical: format!("{rt}-{action}"), kind, resource: Some(rt) });
        }
        let labels: Vec<&str> = lower.split('.').collect();
        let label_ok = |l: &&str| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if labels.len() >= 2 && labels.iter().all(label_ok) {
            return Ok(EventName { canonical: lower, kind: EventKind::Custom, resource: None });
        }
        Err(EventNameError::Malformed(s.to_owned()))
    }

    /// An event of `kind` on a resource type: `EventName::of("Patient", EventKind::Open)`.
    pub fn of(resource: &str, kind: EventKind) -> Option<EventName> {
        let action = match kind {
            EventKind::Open => "open",
            EventKind::Close => "close",
            EventKind::Update => "update",
            EventKind::Select => "select",
            _ => return None,
        };
        EventName::parse(&format!("{resource}-{action}")).ok()
    }

    /// The canonical spelling.
    pub fn as_str(&self) -> &str {
        &self.canonical
    }

    /// The kind.
    pub fn kind(&self) -> EventKind {
        self.kind
    }

    /// The FHIR resource type of `<Resource>-<action>` events.
    pub fn resource_type(&self) -> Option<&'static str> {
        self.resource
    }

    /// The context key of the anchor resource, for `<Resource>-<action>` events (req 65).
    pub fn anchor_key(&self) -> Option<&'static str> {
        self.resource.map(anchor_key)
    }

    /// The `-open` event of the same resource (e.g. `Patient-close` → `Patient-open`).
    pub fn open_event(&self) -> Option<EventName> {
        EventName::of(self.resource?, EventKind::Open)
    }

    /// The context rules of this event (req 64, §3).
    pub fn context_spec(&self) -> ContextSpec {
        context_spec(self)
    }
}

impl fmt::Display for EventName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical)
    }
}

impl FromStr for EventName {
    type Err = EventNameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventName::parse(s)
    }
}

impl Serialize for EventName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.canonical)
    }
}

impl<'de> Deserialize<'de> for EventName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        EventName::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// The context key of a resource type when it is an anchor (req 65): the lower-cased type,
/// except the legacy keys `study` (ImagingStudy) and `report` (DiagnosticReport).
pub fn anchor_key(rt: &str) -> &'static str {
    match rt {
        "ImagingStudy" => "study",
        "DiagnosticReport" => "report",
        // The canonical spelling (every event name's) is found by a binary search; the hub
        // asks once per subscriber per event, where a linear scan of the table showed in the
        // profile.
        other => lower_key(other).or_else(|| resource_type(other).and_then(lower_key)).unwrap_or("resource"),
    }
}

fn lower_key(rt: &str) -> Option<&'static str> {
    // Resource-type keys are the lower-cased type, made once so that they are 'static (a second
    // column of literals in the table would cost the browser SDK's wasm ~1 KB gzipped).
    static KEYS: OnceLock<Vec<String>> = OnceLock::new();
    let i = RESOURCE_TYPES.binary_search(&rt).ok()?;
    let keys = KEYS.get_or_init(|| RESOURCE_TYPES.iter().map(|t| t.to_ascii_lowercase()).collect());
    Some(keys[i].as_str())
}

/// Looks a FHIR resource type up case-insensitively and returns its canonical spelling.
pub fn resource_type(s: &str) -> Option<&'static str> {
    RESOURCE_TYPES.iter().find(|t| t.eq_ignore_ascii_case(s)).copied()
}

/// How a context value is given (req 62).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldKind {
    /// A full resource under `resource`.
    Resource,
    /// A Reference under `reference`.
    Reference,
}

/// One context key an event may or must carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeySpec {
    /// The key.
    pub key: &'static str,
    /// How its value is given.
    pub field: FieldKind,
    /// The resource type (of the resource, or of the reference's target); `None` = any.
    pub resource_type: Option<&'static str>,
    /// At least this many entries.
    pub min: usize,
    /// At most this many entries (`usize::MAX` = unbounded).
    pub max: usize,
}

/// The context rules of one event (req 64).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContextSpec {
    /// The keys this event defines.
    pub keys: Vec<KeySpec>,
    /// Whether keys beyond `keys` are allowed (generic and proprietary events).
    pub open_ended: bool,
    /// Whether the event carries `context.versionId` (req 61, 109): `*-update`.
    pub requires_version: bool,
}

const fn res(key: &'static str, rt: &'static str, min: usize, max: usize) -> KeySpec {
    KeySpec { key, field: FieldKind::Resource, resource_type: Some(rt), min, max }
}
const fn refr(key: &'static str, rt: Option<&'static str>, min: usize, max: usize) -> KeySpec {
    KeySpec { key, field: FieldKind::Reference, resource_type: rt, min, max }
}
const MANY: usize = usize::MAX;

fn context_spec(name: &EventName) -> ContextSpec {
    let closed = |keys: Vec<KeySpec>| ContextSpec { keys, open_ended: false, requires_version: false };
    match (name.kind, name.resource) {
        (EventKind::Open | EventKind::Close, Some("Patient")) => closed(vec![res("patient", "Patient", 1, 1)]),
        (EventKind::Open | EventKind::Close, Some("Encounter")) => {
            closed(vec![res("encounter", "Encounter", 1, 1), res("patient", "Patient", 1, 1)])
        }
        (EventKind::Open | EventKind::Close, Some("ImagingStudy")) => closed(vec![
            res("study", "ImagingStudy", 1, 1),
            res("encounter", "Encounter", 0, 1),
            res("patient", "Patient", 0, 1),
        ]),
        (EventKind::Open | EventKind::Close, Some("DiagnosticReport")) => closed(vec![
            res("report", "DiagnosticReport", 1, 1),
            res("encounter", "Encounter", 0, 1),
            res("study", "ImagingStudy", 0, MANY),
            res("patient", "Patient", 1, 1),
        ]),
        (EventKind::Open | EventKind::Close, Some(rt)) => {
            ContextSpec { keys: vec![res(anchor_key(rt), rt, 1, 1)], open_ended: true, requires_version: false }
        }
        (EventKind::Update, Some(rt)) => ContextSpec {
            keys: vec![
                refr(anchor_key(rt), Some(rt), 1, 1),
                refr("patient", Some("Patient"), 0, 1),
                res("updates", "Bundle", 1, 1),
            ],
            open_ended: false,
            requires_version: true,
        },
        // An empty selection clears it (req 121; §5a-16): `select` is 0..*.
        (EventKind::Select, Some(rt)) => closed(vec![
            refr(anchor_key(rt), Some(rt), 1, 1),
            refr("patient", Some("Patient"), 0, 1),
            refr("select", None, 0, MANY),
        ]),
        (EventKind::SyncError, _) => closed(vec![res("operationoutcome", "OperationOutcome", 1, 1)]),
        (EventKind::UserLogout | EventKind::UserHibernate, _) => closed(vec![res("parameters", "Parameters", 1, 1)]),
        (EventKind::HomeOpen, _) => closed(vec![]),
        _ => ContextSpec { keys: vec![], open_ended: true, requires_version: false },
    }
}

/// The standard events this implementation knows by name (req §3); with generic names any
/// resource type works, these are the ones a Hub advertises in `eventsSupported`.
pub const STANDARD_EVENTS: &[&str] = &[
    "Patient-open",
    "Patient-close",
    "Encounter-open",
    "Encounter-close",
    "ImagingStudy-open",
    "ImagingStudy-close",
    "DiagnosticReport-open",
    "DiagnosticReport-close",
    "DiagnosticReport-update",
    "DiagnosticReport-select",
    "SyncError",
    "UserLogout",
    "UserHibernate",
    "Home-open",
];

/// FHIR R4 (4.0.1) resource types, plus R5's ImagingSelection.
static RESOURCE_TYPES: &[&str] = &[
    "Account",
    "ActivityDefinition",
    "AdverseEvent",
    "AllergyIntolerance",
    "Appointment",
    "AppointmentResponse",
    "AuditEvent",
    "Basic",
    "Binary",
    "BiologicallyDerivedProduct",
    "BodyStructure",
    "Bundle",
    "CapabilityStatement",
    "CarePlan",
    "CareTeam",
    "CatalogEntry",
    "ChargeItem",
    "ChargeItemDefinition",
    "Claim",
    "ClaimResponse",
    "ClinicalImpression",
    "CodeSystem",
    "Communication",
    "CommunicationRequest",
    "CompartmentDefinition",
    "Composition",
    "ConceptMap",
    "Condition",
    "Consent",
    "Contract",
    "Coverage",
    "CoverageEligibilityRequest",
    "CoverageEligibilityResponse",
    "DetectedIssue",
    "Device",
    "DeviceDefinition",
    "DeviceMetric",
    "DeviceRequest",
    "DeviceUseStatement",
    "DiagnosticReport",
    "DocumentManifest",
    "DocumentReference",
    "EffectEvidenceSynthesis",
    "Encounter",
    "Endpoint",
    "EnrollmentRequest",
    "EnrollmentResponse",
    "EpisodeOfCare",
    "EventDefinition",
    "Evidence",
    "EvidenceVariable",
    "ExampleScenario",
    "ExplanationOfBenefit",
    "FamilyMemberHistory",
    "Flag",
    "Goal",
    "GraphDefinition",
    "Group",
    "GuidanceResponse",
    "HealthcareService",
    "ImagingSelection",
    "ImagingStudy",
    "Immunization",
    "ImmunizationEvaluation",
    "ImmunizationRecommendation",
    "ImplementationGuide",
    "InsurancePlan",
    "Invoice",
    "Library",
    "Linkage",
    "List",
    "Location",
    "Measure",
    "MeasureReport",
    "Media",
    "Medication",
    "MedicationAdministration",
    "MedicationDispense",
    "MedicationKnowledge",
    "MedicationRequest",
    "MedicationStatement",
    "MedicinalProduct",
    "MedicinalProductAuthorization",
    "MedicinalProductContraindication",
    "MedicinalProductIndication",
    "MedicinalProductIngredient",
    "MedicinalProductInteraction",
    "MedicinalProductManufactured",
    "MedicinalProductPackaged",
    "MedicinalProductPharmaceutical",
    "MedicinalProductUndesirableEffect",
    "MessageDefinition",
    "MessageHeader",
    "MolecularSequence",
    "NamingSystem",
    "NutritionOrder",
    "Observation",
    "ObservationDefinition",
    "OperationDefinition",
    "OperationOutcome",
    "Organization",
    "OrganizationAffiliation",
    "Parameters",
    "Patient",
    "PaymentNotice",
    "PaymentReconciliation",
    "Person",
    "PlanDefinition",
    "Practitioner",
    "PractitionerRole",
    "Procedure",
    "Provenance",
    "Questionnaire",
    "QuestionnaireResponse",
    "RelatedPerson",
    "RequestGroup",
    "ResearchDefinition",
    "ResearchElementDefinition",
    "ResearchStudy",
    "ResearchSubject",
    "RiskAssessment",
    "RiskEvidenceSynthesis",
    "Schedule",
    "SearchParameter",
    "ServiceRequest",
    "Slot",
    "Specimen",
    "SpecimenDefinition",
    "StructureDefinition",
    "StructureMap",
    "Subscription",
    "Substance",
    "SubstanceNucleicAcid",
    "SubstancePolymer",
    "SubstanceProtein",
    "SubstanceReferenceInformation",
    "SubstanceSourceMaterial",
    "SubstanceSpecification",
    "SupplyDelivery",
    "SupplyRequest",
    "Task",
    "TerminologyCapabilities",
    "TestReport",
    "TestScript",
    "ValueSet",
    "VerificationResult",
    "VisionPrescription",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> EventName {
        EventName::parse(s).unwrap()
    }

    #[test]
    fn req34_names_are_case_insensitive_and_canonical() {
        assert_eq!(n("patient-open"), n("Patient-open"));
        assert_eq!(n("PATIENT-OPEN").as_str(), "Patient-open");
        assert_eq!(n("syncerror").as_str(), "SyncError");
        assert_eq!(n("userLogout").as_str(), "UserLogout");
        assert_eq!(n("userHibernate").as_str(), "UserHibernate");
        assert_eq!(n("home-open").as_str(), "Home-open");
        assert_eq!(n("diagnosticreport-UPDATE").as_str(), "DiagnosticReport-update");
        assert_eq!(n("imagingstudy-open").anchor_key(), Some("study"));
    }

    #[test]
    fn req134_generic_resource_events() {
        let e = n("medicationrequest-select");
        assert_eq!(e.as_str(), "MedicationRequest-select");
        assert_eq!(e.kind(), EventKind::Select);
        assert_eq!(e.anchor_key(), Some("medicationrequest"));
        assert!(matches!(EventName::parse("Foo-open"), Err(EventNameError::UnknownResource { .. })));
        assert!(matches!(EventName::parse("Patient-opened"), Err(EventNameError::UnknownAction { .. })));
    }

    #[test]
    fn req135_reverse_domain_custom_events() {
        let e = n("org.Example.Thing");
        assert_eq!(e.kind(), EventKind::Custom);
        assert_eq!(e, n("org.example.thing"));
        assert!(EventName::parse("example").is_err());
        assert!(EventName::parse("org..thing").is_err());
    }

    #[test]
    fn req36_neg6_wildcards_are_rejected() {
        for w in ["*", "*-open", "Patient-*"] {
            assert!(matches!(EventName::parse(w), Err(EventNameError::Wildcard(_))), "{w}");
        }
    }

    #[test]
    fn req65_anchor_keys() {
        assert_eq!(anchor_key("Patient"), "patient");
        assert_eq!(anchor_key("ImagingStudy"), "study");
        assert_eq!(anchor_key("DiagnosticReport"), "report");
        assert_eq!(anchor_key("MedicationRequest"), "medicationrequest");
    }

    #[test]
    fn resource_table_keys_are_lower_case_types() {
        for t in RESOURCE_TYPES {
            let want = match *t {
                "ImagingStudy" => "study".to_owned(),
                "DiagnosticReport" => "report".to_owned(),
                other => other.to_ascii_lowercase(),
            };
            assert_eq!(anchor_key(t), want);
        }
        // anchor_key finds canonical spellings by binary search.
        assert!(RESOURCE_TYPES.windows(2).all(|w| w[0] < w[1]), "RESOURCE_TYPES must stay sorted");
        assert_eq!(anchor_key("pAtIeNt"), "patient");
        assert_eq!(anchor_key("NotAType"), "resource");
    }

    #[test]
    fn catalog_section3_context_specs() {
        let dr = n("DiagnosticReport-open").context_spec();
        let keys: Vec<_> = dr.keys.iter().map(|k| (k.key, k.min, k.max)).collect();
        assert_eq!(keys, vec![("report", 1, 1), ("encounter", 0, 1), ("study", 0, MANY), ("patient", 1, 1)]);
        assert!(n("DiagnosticReport-update").context_spec().requires_version);
        assert!(n("Home-open").context_spec().keys.is_empty());
        assert!(!n("Home-open").context_spec().open_ended);
        assert!(n("org.example.x").context_spec().open_ended);
        for e in STANDARD_EVENTS {
            assert_eq!(n(e).as_str(), *e);
        }
    }
}
