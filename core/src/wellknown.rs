//! The Hub's configuration document at `{hub.url}/.well-known/fhircast-configuration`
//! (req 11-15, neg 26).
//!
//! A Hub serves [`WellKnown::for_hub`]; a subscriber reads whatever a Hub serves, so reading is
//! lenient: unknown fields (STU2's `webhookSupport`, vendor additions) are ignored (req 13), and
//! a missing deprecated `websocketSupport` reads as `true`, the only value STU3 allows.

use serde::{Deserialize, Serialize};

use crate::catalog::EventName;

/// The path a Hub serves its configuration at, appended to `hub.url` (req 11).
pub const WELL_KNOWN_PATH: &str = "/.well-known/fhircast-configuration";

/// The FHIRcast version this crate implements, as sent in `fhircastVersion` (req 12).
pub const FHIRCAST_VERSION: &str = "3.0.0";

/// The configuration URL of a Hub: `hub.url` plus [`WELL_KNOWN_PATH`], appended even when
/// `hub.url` has a path, contrary to RFC 5785 (req 11).
pub fn well_known_url(hub_url: &str) -> String {
    format!("{}{WELL_KNOWN_PATH}", hub_url.trim().trim_end_matches('/'))
}

/// The optional features a Hub advertises (req 12, 14, 100).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Capabilities {
    /// Whether `GET {hub.url}/{topic}` answers with the current context (req 100).
    pub supports_get_current_context: bool,
    /// Whether `*-update` is accepted for open anchors that are not current (req 14, 119).
    pub supports_non_current_context_updates: bool,
}

fn yes() -> bool {
    true
}

/// The configuration document (req 12).
///
/// Optional fields are left out when `None`; fields this struct does not know are ignored
/// when reading (req 13).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WellKnown {
    /// The events the Hub supports, in canonical spelling (required).
    pub events_supported: Vec<String>,
    /// Deprecated, but required and SHALL be `true`: STU3's only channel is WebSocket. Read
    /// as `true` when absent, since no other value is meaningful.
    #[serde(default = "yes")]
    pub websocket_support: bool,
    /// The FHIRcast version, e.g. `3.0.0` (Hubs SHOULD send it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fhircast_version: Option<String>,
    /// Deprecated twin of `capabilities.supportsGetCurrentContext`; sent alongside it for
    /// clients that predate `capabilities`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub get_current_support: Option<bool>,
    /// The optional features.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Capabilities>,
    /// The FHIR version: one of `DSTU1`, `DSTU2`, `STU3`, `R4`, `R4B`, `R5`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fhir_version: Option<String>,
}

impl WellKnown {
    /// What a Hub serving every standard event (`catalog::STANDARD_EVENTS`) advertises: the
    /// deployed Worker's document and the test kit's.
    pub fn standard_hub(supports_non_current_context_updates: bool) -> WellKnown {
        let events: Vec<EventName> =
            crate::catalog::STANDARD_EVENTS.iter().filter_map(|e| EventName::parse(e).ok()).collect();
        WellKnown::for_hub(events.iter(), supports_non_current_context_updates)
    }

    /// The document this implementation's Hub serves: WebSocket support, version `3.0.0`,
    /// get-current-context supported (in both the deprecated and the new field), FHIR `R4`.
    /// Events are listed once each, in the order given, by canonical name.
    pub fn for_hub<'a>(
        events: impl IntoIterator<Item = &'a EventName>,
        supports_non_current_context_updates: bool,
    ) -> WellKnown {
        let mut events_supported: Vec<String> = Vec::new();
        for e in events {
            if !events_supported.iter().any(|s| s == e.as_str()) {
                events_supported.push(e.as_str().to_owned());
            }
        }
        WellKnown {
            events_supported,
            websocket_support: true,
            fhircast_version: Some(FHIRCAST_VERSION.to_owned()),
            get_current_support: Some(true),
            capabilities: Some(Capabilities {
                supports_get_current_context: true,
                supports_non_current_context_updates,
            }),
            fhir_version: Some("R4".to_owned()),
        }
    }

    /// Whether the Hub lists this event, comparing names case-insensitively (req 34).
    pub fn supports(&self, event: &EventName) -> bool {
        self.events_supported.iter().any(|s| EventName::parse(s).is_ok_and(|n| n == *event))
    }

    /// Whether the Hub answers get-current-context: from `capabilities`, or else from the
    /// deprecated `getCurrentSupport` (req 100).
    pub fn supports_get_current_context(&self) -> bool {
        match &self.capabilities {
            Some(c) => c.supports_get_current_context,
            None => self.get_current_support.unwrap_or(false),
        }
    }

    /// Whether the Hub takes updates for open anchors that are not current (req 14, 119).
    pub fn supports_non_current_context_updates(&self) -> bool {
        self.capabilities.as_ref().is_some_and(|c| c.supports_non_current_context_updates)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(ns: &[&str]) -> Vec<EventName> {
        ns.iter().map(|n| EventName::parse(n).unwrap()).collect()
    }

    #[test]
    fn req12_hub_document_is_exact() {
        let events = names(&["Patient-open", "patient-OPEN", "Patient-close", "syncerror"]);
        let w = WellKnown::for_hub(&events, false);
        assert_eq!(
            serde_json::to_string(&w).unwrap(),
            r#"{"eventsSupported":["Patient-open","Patient-close","SyncError"],"websocketSupport":true,"fhircastVersion":"3.0.0","getCurrentSupport":true,"capabilities":{"supportsGetCurrentContext":true,"supportsNonCurrentContextUpdates":false},"fhirVersion":"R4"}"#
        );
    }

    #[test]
    fn req14_non_current_updates_advertised() {
        let w = WellKnown::for_hub(&names(&["DiagnosticReport-update"]), true);
        assert!(w.supports_non_current_context_updates());
        assert!(w.supports_get_current_context());
    }

    #[test]
    fn req15_rewritten_example_round_trips() {
        let text = r#"{"eventsSupported":["Patient-open","Patient-close","SyncError"],"websocketSupport":true,"fhircastVersion":"3.0.0","capabilities":{"supportsGetCurrentContext":true,"supportsNonCurrentContextUpdates":false}}"#;
        let w: WellKnown = serde_json::from_str(text).unwrap();
        assert_eq!(w.get_current_support, None);
        assert_eq!(w.fhir_version, None);
        assert_eq!(serde_json::to_string(&w).unwrap(), text, "None fields are skipped");
        assert!(w.supports(&EventName::parse("SYNCERROR").unwrap()));
        assert!(!w.supports(&EventName::parse("Encounter-open").unwrap()));
    }

    #[test]
    fn req13_webhook_support_ignored() {
        let text =
            r#"{"eventsSupported":["patient-open"],"websocketSupport":true,"webhookSupport":true,"vendor":{"x":1}}"#;
        let w: WellKnown = serde_json::from_str(text).unwrap();
        assert_eq!(w.events_supported, vec!["patient-open".to_owned()]);
        assert!(!serde_json::to_string(&w).unwrap().contains("webhook"));
        assert!(w.supports(&EventName::parse("Patient-open").unwrap()), "req 34: case-insensitive");
    }

    #[test]
    fn req12_lenient_reader() {
        // STU2-era Hubs: no websocketSupport, the deprecated getCurrentSupport only.
        let w: WellKnown = serde_json::from_str(r#"{"eventsSupported":[],"getCurrentSupport":true}"#).unwrap();
        assert!(w.websocket_support);
        assert!(w.supports_get_current_context());
        assert!(!w.supports_non_current_context_updates());
        assert!(
            serde_json::from_str::<WellKnown>(r#"{"websocketSupport":true}"#).is_err(),
            "eventsSupported is required"
        );
    }

    #[test]
    fn req11_url_appends_even_with_a_path() {
        assert_eq!(
            well_known_url("https://hub.example/fhircast/"),
            "https://hub.example/fhircast/.well-known/fhircast-configuration"
        );
        assert_eq!(well_known_url("https://hub.example"), "https://hub.example/.well-known/fhircast-configuration");
    }
}
