//! Content sharing and selection (req 107-121), the subscriber's side: the context arrays of
//! `<Type>-update` and `<Type>-select` events, built from what an app has at hand, and the
//! rule that only the current anchor's resources can be selected (req 119). The browser SDK
//! calls these (issue 12: the protocol's decisions are the core's, the SDK is a pump).
//!
//! The JSON is written directly (resources are kept as the app's bytes, [`RawValue`]); the
//! hub validates the Bundle whole (req 111, neg 17) and its 400 names what is wrong. Only what
//! the SDK itself needs is checked here: every `PUT` names its resource (`resourceType` and
//! `id`), every `DELETE` a `Type/id`. (Building through `serde_json::Value` or re-validating
//! with the core's `UpdateBundle::parse` cost ~20 KB of wasm; the native tests below still
//! check the output with it.)

use serde_json::value::RawValue;

use crate::catalog::{anchor_key, EventKind, EventName};
use crate::wire::{ContextEntry, ResourceKey, ValueField};

/// Why an update or a selection cannot be built; the message says what to fix.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SharingError(pub String);

fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| unreachable!("strings serialise"))
}

/// `{put: [...resources], delete: ['Observation/x', ...]}` as given to `update()`: the
/// resources as JSON text, the deletions as references.
#[derive(Debug, Default)]
pub struct Changes {
    /// Resources to create or replace, as JSON text.
    pub put: Vec<String>,
    /// References (`Type/id`) of resources to remove.
    pub delete: Vec<String>,
}

/// Reads an anchor given as `Type/id` (or a URL ending in it).
pub fn parse_anchor(anchor: &str) -> Result<(ResourceKey, &'static str), SharingError> {
    let key = ResourceKey::from_url(anchor).ok_or_else(|| {
        SharingError(format!(
            "{anchor:?} is not an anchor: expected \"<ResourceType>/<id>\", e.g. \"DiagnosticReport/r1\""
        ))
    })?;
    let rt = crate::catalog::resource_type(&key.resource_type)
        .ok_or_else(|| SharingError(format!("{:?} is not a FHIR resource type (req 134)", key.resource_type)))?;
    Ok((ResourceKey::new(rt, key.id), rt))
}

/// `{"key": .., "reference": {"reference": "Type/id"}}`.
fn reference_entry(key: &str, target: &ResourceKey) -> ContextEntry {
    let value = format!("{{\"reference\":{}}}", quoted(&target.to_string()));
    ContextEntry {
        key: key.to_owned(),
        field: ValueField::Reference,
        value: RawValue::from_string(value).unwrap_or_else(|_| unreachable!("valid JSON")),
    }
}

/// The name and context of `<Type>-update` for `anchor` (req 65, 116): a reference to the
/// anchor and a transaction Bundle with one `PUT` per resource and one `DELETE` per reference.
/// `bundle_id` should be unique (a UUID; req 120 asks for globally unique ids).
pub fn update_event(
    anchor: &str,
    changes: &Changes,
    bundle_id: &str,
) -> Result<(EventName, Vec<ContextEntry>), SharingError> {
    let (anchor, rt) = parse_anchor(anchor)?;
    if changes.put.is_empty() && changes.delete.is_empty() {
        return Err(SharingError("update(anchor, changes): nothing to change (put and delete are empty)".into()));
    }
    let mut bundle =
        format!("{{\"resourceType\":\"Bundle\",\"id\":{},\"type\":\"transaction\",\"entry\":[", quoted(bundle_id));
    let mut targets: Vec<ResourceKey> = Vec::new();
    for (i, resource) in changes.put.iter().enumerate() {
        let header = ContextEntry::resource_raw("put", resource).ok().and_then(|e| e.resource_header());
        let Some(key) = header.and_then(|h| Some(ResourceKey::new(h.resource_type, h.id?))) else {
            return Err(SharingError(format!(
                "update: put[{i}] needs a resourceType and an id (req 116; give resources you create a UUID id, req 120)"
            )));
        };
        if !targets.is_empty() {
            bundle.push(',');
        }
        bundle.push_str(&format!(
            "{{\"request\":{{\"method\":\"PUT\",\"url\":{}}},\"resource\":{}}}",
            quoted(&key.to_string()),
            resource
        ));
        targets.push(key);
    }
    for (i, target) in changes.delete.iter().enumerate() {
        let key = ResourceKey::from_url(target).ok_or_else(|| {
            SharingError(format!("update: delete[{i}] {target:?} is not a reference like \"Observation/o1\""))
        })?;
        if !targets.is_empty() {
            bundle.push(',');
        }
        let url = quoted(&key.to_string());
        bundle.push_str(&format!("{{\"fullUrl\":{url},\"request\":{{\"method\":\"DELETE\",\"url\":{url}}}}}"));
        targets.push(key);
    }
    if let Some(dup) = targets.iter().enumerate().find(|(i, k)| targets[..*i].contains(k)).map(|(_, k)| k) {
        return Err(SharingError(format!("update: {dup} is changed twice in one update (req 116)")));
    }
    bundle.push_str("]}");
    let name = EventName::of(rt, EventKind::Update).expect("a catalogued resource type");
    let context = vec![
        reference_entry(anchor_key(rt), &anchor),
        ContextEntry::resource_raw("updates", &bundle).unwrap_or_else(|_| unreachable!("valid JSON")),
    ];
    Ok((name, context))
}

/// The name and context of `<Type>-select` for `anchor` (req 115, 121): the anchor and one
/// `select` reference per selected resource. An empty selection clears it (§5a-16). Only the
/// `current` anchor's resources can be selected (req 119).
pub fn select_event(
    anchor: &str,
    selected: &[String],
    current: Option<&ResourceKey>,
) -> Result<(EventName, Vec<ContextEntry>), SharingError> {
    let (anchor, rt) = parse_anchor(anchor)?;
    let mut context = vec![reference_entry(anchor_key(rt), &anchor)];
    for (i, s) in selected.iter().enumerate() {
        let key = ResourceKey::from_url(s).ok_or_else(|| {
            SharingError(format!("select: references[{i}] {s:?} is not a reference like \"Observation/o1\""))
        })?;
        context.push(reference_entry("select", &key));
    }
    if current != Some(&anchor) {
        return Err(SharingError(format!(
            "select(): {anchor} is not the current context, and only the current anchor's resources can be selected (req 119)"
        )));
    }
    Ok((EventName::of(rt, EventKind::Select).expect("a catalogued resource type"), context))
}

#[cfg(test)]
mod tests {
    use crate::bundle::{Change, UpdateBundle};
    use crate::Event;

    use super::*;

    fn changes(put: &[&str], delete: &[&str]) -> Changes {
        Changes {
            put: put.iter().map(|s| s.to_string()).collect(),
            delete: delete.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn req116_update_builds_a_transaction_bundle_the_core_accepts() {
        let c = changes(&[r#"{"resourceType":"Observation","id":"o1","status":"preliminary"}"#], &["Observation/o2"]);
        let (name, context) = update_event("DiagnosticReport/r1", &c, "b-1").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(name.as_str(), "DiagnosticReport-update");
        assert_eq!(context[0].key, "report");
        assert_eq!(context[0].value.get(), r#"{"reference":"DiagnosticReport/r1"}"#);
        let bundle = UpdateBundle::from_context(&context, 10).unwrap();
        assert_eq!(bundle.id.as_deref(), Some("b-1"));
        assert!(
            matches!(&bundle.changes[0], Change::Put { key, resource } if key.to_string() == "Observation/o1" && resource.get().contains("preliminary"))
        );
        assert!(matches!(&bundle.changes[1], Change::Delete { key } if key.to_string() == "Observation/o2"));
        // With a versionId (added by the follower) it is a valid event.
        let e = Event {
            timestamp: crate::Timestamp::EPOCH,
            id: "e".into(),
            topic: "T".into(),
            name,
            version_id: Some("v1".into()),
            prior_version_id: None,
            context,
        };
        e.validate().unwrap();
    }

    #[test]
    fn req116_bad_changes_fail_with_a_message() {
        let bad = |put: &[&str], delete: &[&str], anchor: &str| {
            update_event(anchor, &changes(put, delete), "b").unwrap_err().to_string()
        };
        let r1 = "DiagnosticReport/r1";
        assert!(bad(&[r#"{"resourceType":"Observation"}"#], &[], r1).contains("needs a resourceType and an id"));
        assert!(bad(&["[1]"], &[], r1).contains("put[0]"));
        assert!(bad(&[], &["not a ref"], r1).contains("delete[0]"));
        assert!(bad(&[], &[], r1).contains("nothing to change"));
        assert!(
            bad(&[r#"{"resourceType":"Observation","id":"o1"}"#], &["Observation/o1"], r1).contains("changed twice")
        );
        assert!(bad(&[], &["Observation/o1"], "r1").contains("not an anchor"));
        assert!(bad(&[], &["Observation/o1"], "Nonsense/r1").contains("not a FHIR resource type"));
    }

    #[test]
    fn req121_select_references_and_empty_selection() {
        let s1 = ResourceKey::new("ImagingStudy", "s1");
        let (name, context) = select_event("ImagingStudy/s1", &["Observation/o1".into()], Some(&s1)).unwrap();
        assert_eq!(name.as_str(), "ImagingStudy-select");
        assert_eq!(context.len(), 2);
        assert_eq!(context[0].key, "study");
        assert_eq!(context[1].key, "select");
        let (_, context) = select_event("ImagingStudy/s1", &[], Some(&s1)).unwrap();
        assert_eq!(context.len(), 1, "an empty selection clears it (§5a-16)");
        assert!(select_event("ImagingStudy/s1", &["?".into()], Some(&s1)).is_err());
        // req 119: never for an anchor that is not the current one.
        let other = ResourceKey::new("ImagingStudy", "s2");
        assert!(select_event("ImagingStudy/s1", &[], Some(&other)).unwrap_err().to_string().contains("req 119"));
        assert!(select_event("ImagingStudy/s1", &[], None).is_err());
    }
}
