//! The spec's own JSON examples (`tests/spec-examples/`, copied from the pages of
//! HL7/fhircast-docs) run through the SyncError, content-sharing and well-known modules.
//!
//! The examples have warts (see the spec README): the SyncError uses the `…/subscriber` coding
//! system, and the update Bundles have neither `request.url` nor a Bundle `id`. These tests pin
//! down that the core accepts exactly those harmless deviations.

use std::path::PathBuf;

use fhircast_core::bundle::{Change, Content, ResourceKey, UpdateBundle};
use fhircast_core::syncerror::{IssueCode, SyncErrorDetails};
use fhircast_core::wellknown::WellKnown;
use fhircast_core::wire::ContextEntry;
use fhircast_core::{EventKind, EventName};
use serde_json::Value;

const MAX_ENTRIES: usize = 100;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/spec-examples")
}

fn read(name: &str) -> String {
    std::fs::read_to_string(dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn event(name: &str) -> Value {
    serde_json::from_str::<Value>(&read(name)).unwrap_or_else(|e| panic!("{name}: {e}"))["event"].clone()
}

/// The `event.context` array, read the way a Hub reads it: as context entries with raw values.
fn context(name: &str) -> Vec<ContextEntry> {
    serde_json::from_value(event(name)["context"].clone()).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn version(name: &str, key: &str) -> Option<String> {
    event(name)[key].as_str().map(str::to_owned)
}

const UPDATE: &str = "3-6-3-DiagnosticReport-update__0.json";
const BROADCAST: &str = "3-6-3-DiagnosticReport-update__1.json";
const DELETE: &str = "3-6-3-DiagnosticReport-update__2.json";

const STUDY: (&str, &str) = ("ImagingStudy", "7e9deb91-0017-4690-aebd-951cef34aba4");
const OBSERVATION: (&str, &str) = ("Observation", "40afe766-3628-4ded-b5bd-925727c013b3");
const REPORT: (&str, &str) = ("DiagnosticReport", "2402d3bd-e988-414b-b7f2-4322e86c9327");

fn key((t, id): (&str, &str)) -> ResourceKey {
    ResourceKey::new(t, id)
}

#[test]
fn req93_spec_syncerror_example_parses_with_legacy_subscriber_system() {
    let name = "3-2-1-SyncError__0.json";
    // req 90: the page sends "syncerror"; names are case-insensitive.
    let event_name: EventName = event(name)["hub.event"].as_str().unwrap().parse().unwrap();
    assert_eq!(event_name.kind(), EventKind::SyncError);
    let d = SyncErrorDetails::from_context(&context(name)).unwrap();
    assert_eq!(
        d,
        SyncErrorDetails {
            event_id: "fdb2f928-5546-4f52-87a0-0648e9ded065".into(),
            event_name: "Patient-open".into(),
            // From the `…/subscriber` system (req 93); the vendor coding after it is ignored.
            subscriber_name: "Acme Product".into(),
            diagnostics: "Acme Product failed to follow context".into(),
            code: IssueCode::Processing,
            severity: fhircast_core::syncerror::Severity::Warning,
        }
    );
    // Re-emitted, it uses the profile's `…/subscribername` system and reads back the same.
    let again = d.to_operation_outcome_json();
    assert!(again.contains("https://fhircast.hl7.org/events/syncerror/subscribername"));
    assert_eq!(SyncErrorDetails::from_operation_outcome(&again).unwrap(), d);
}

#[test]
fn req116_spec_update_example_parses_without_request_url_or_bundle_id() {
    let b = UpdateBundle::from_context(&context(UPDATE), MAX_ENTRIES).unwrap();
    assert_eq!(b.id, None, "the spec's Bundles have no id (§5a-17)");
    let keys: Vec<_> = b.changes.iter().map(|c| c.key().clone()).collect();
    assert_eq!(keys, vec![key(STUDY), key(OBSERVATION), key(REPORT)]);
    assert!(b.changes.iter().all(|c| matches!(c, Change::Put { .. })));
}

#[test]
fn req112_broadcast_example_carries_the_same_bundle() {
    // The Hub's broadcast (req 110) repeats the request's Bundle and chains the versions.
    let request = UpdateBundle::from_context(&context(UPDATE), MAX_ENTRIES).unwrap();
    let broadcast = UpdateBundle::from_context(&context(BROADCAST), MAX_ENTRIES).unwrap();
    assert_eq!(request, broadcast);
    assert_eq!(version(BROADCAST, "context.priorVersionId"), version(UPDATE, "context.versionId"));
    // req 117: the next update sends the version the broadcast announced.
    assert_eq!(version(DELETE, "context.versionId"), version(BROADCAST, "context.versionId"));
}

#[test]
fn req111_spec_update_examples_apply_and_delete_removes() {
    let mut content = Content::default();
    content.apply(&UpdateBundle::from_context(&context(UPDATE), MAX_ENTRIES).unwrap());
    assert_eq!(content.len(), 3);
    let report_before = content.get(&key(REPORT)).unwrap().get().to_owned();
    assert!(report_before.contains("Microcalcifications"));

    let delete = UpdateBundle::from_context(&context(DELETE), MAX_ENTRIES).unwrap();
    assert_eq!(delete.changes[0], Change::Delete { key: key(OBSERVATION) }, "target from fullUrl, no request.url");
    content.apply(&delete);
    assert_eq!(content.len(), 2);
    assert!(content.get(&key(OBSERVATION)).is_none());
    assert!(content.get(&key(STUDY)).is_some());
    let report_after = content.get(&key(REPORT)).unwrap().get();
    assert!(!report_after.contains("Microcalcifications"), "the PUT replaced the report");

    // req 105: what get-current-context would return now.
    let bundle: Value = serde_json::from_str(&content.collection_bundle_json()).unwrap();
    assert_eq!(bundle["type"], "collection");
    let types: Vec<_> =
        bundle["entry"].as_array().unwrap().iter().map(|e| e["resource"]["resourceType"].clone()).collect();
    assert_eq!(types, ["DiagnosticReport", "ImagingStudy"]);
    assert_eq!(Content::from_collection_bundle(&content.collection_bundle_json()).unwrap(), content);
}

#[test]
fn req111_spec_resources_are_stored_byte_for_byte() {
    let ctx = context(UPDATE);
    let updates = ctx.iter().find(|e| e.key == "updates").unwrap().value.get();
    let mut content = Content::default();
    content.apply(&UpdateBundle::parse(updates, MAX_ENTRIES).unwrap());
    let stored = content.get(&key(OBSERVATION)).unwrap().get();
    assert!(updates.contains(stored), "the stored resource is a verbatim slice of the request");
}

#[test]
fn req12_well_known_example_if_present() {
    // The [2-7] well-known example is not among the extracted files; read any that appear.
    for entry in std::fs::read_dir(dir()).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.starts_with("2-7-") {
            let w: WellKnown = serde_json::from_str(&read(&name)).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(w.websocket_support, "{name}");
        }
    }
}

#[test]
fn spec_examples_folder_holds_only_valid_json() {
    // The spec pages also have invalid snippets ([2-6] context change: missing comma; [2-9] GET
    // with content: missing comma; [3-6-1] Hub open: a "... as above ..." placeholder; [4-1]
    // second token response: trailing comma). They were not extracted, so every file here
    // must parse; a malformed one added later should fail this test, not a protocol test.
    let mut count = 0;
    for entry in std::fs::read_dir(dir()).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(serde_json::from_str::<Value>(&read(&name)).is_ok(), "{name} is not valid JSON");
        count += 1;
    }
    assert!(count >= 26, "only {count} example files");
}
