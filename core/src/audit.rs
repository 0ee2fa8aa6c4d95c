//! The audit trail (issue 17): FHIR R4 `AuditEvent`s for every subscribe, unsubscribe, event
//! and SyncError a topic sees, accepted or refused, made from the topic's recorded facts
//! ([`crate::hub::timeline`]).
//!
//! Hospitals audit access to patient context (IHE recommends ATNA audit for the FHIRcast hub
//! role). The shape follows the IHE Basic Audit Log Patterns where they fit: `type` is a
//! RESTful operation, `action` C/D/E, `outcome` 0 (success), 4 (refused by the Hub's rules) or
//! 8 (a server failure); the agents are the user (the token's `sub`, the requestor), the
//! client application (its `client_id`) and the Hub; the entities are the topic and, for an
//! event, its anchor as a reference (a patient anchor with the Patient role). Resource bodies
//! never appear, nor the free text an app put into a SyncError.
//!
//! What the audit does not cover: notifications and answers (the timeline has them; they are
//! N per event and say nothing about access), connects and closes.
//!
//! Codes this Hub defines itself are in the system [`SUBTYPE_SYSTEM`] (what was done) and
//! [`EVENT_SYSTEM`] (the FHIRcast event name); ARCHITECTURE.md lists them.

use serde_json::{json, Value};

use crate::hub::{Fact, FactKind, Who};

/// What was done: `subscribe`, `unsubscribe`, `event`, `sync-error`.
pub const SUBTYPE_SYSTEM: &str = "urn:fhircast-hub:audit";
/// The FHIRcast event an `event` or `sync-error` audit is about (`Patient-open`, …).
pub const EVENT_SYSTEM: &str = "urn:fhircast-hub:event";
/// The topic, as an entity's identifier.
pub const TOPIC_SYSTEM: &str = "urn:fhircast-hub:topic";

const DCM: &str = "http://dicom.nema.org/resources/ontology/DCM";

/// What varies between AuditEvents: subtype, action, outcome, outcome description, who asked,
/// the FHIRcast event, the entities.
type Shape<'a> = (&'a str, &'a str, u8, Option<&'a str>, Option<&'a Who>, Option<&'a str>, Vec<Value>);

/// The `AuditEvent` for `fact` on `topic`, or `None` for a fact that is not audited.
/// `site` names the Hub's deployment (`source.site`), if configured.
pub fn audit_event(fact: &Fact, topic: &str, site: Option<&str>) -> Option<Value> {
    let topic_entity = |details: Vec<(&str, String)>| {
        let mut e = json!({
            "what": { "identifier": { "system": TOPIC_SYSTEM, "value": topic } },
            "type": { "system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2", "display": "System Object" },
        });
        if !details.is_empty() {
            e["detail"] = details.into_iter().map(|(t, v)| json!({ "type": t, "valueString": v })).collect();
        }
        e
    };
    let shape: Shape<'_> = match &fact.what {
        FactKind::Subscribed { subscriber, events, renewed, by, .. } => {
            let events = events.iter().map(|e| e.as_str()).collect::<Vec<_>>().join(",");
            let mut d = vec![("subscriber.name", subscriber.clone()), ("hub.events", events)];
            if *renewed {
                d.push(("renewed", "true".into()));
            }
            ("subscribe", "C", 0, None, by.as_ref(), None, vec![topic_entity(d)])
        }
        FactKind::SubscribeRefused { status, reason, by } => (
            "subscribe",
            "C",
            outcome_of(*status),
            Some(reason.as_str()),
            by.as_ref(),
            None,
            vec![topic_entity(vec![])],
        ),
        FactKind::Unsubscribed { subscriber, reason, by } => {
            let d = vec![("subscriber.name", subscriber.clone()), ("reason", reason.clone())];
            ("unsubscribe", "D", 0, None, by.as_ref(), None, vec![topic_entity(d)])
        }
        FactKind::Event { id, event, anchor, duplicate, by, .. } => {
            let mut d = vec![("event.id", id.clone())];
            if *duplicate {
                d.push(("duplicate", "true".into()));
            }
            let mut entities = vec![topic_entity(d)];
            entities.extend(anchor.as_deref().map(anchor_entity));
            ("event", "E", 0, None, by.as_ref(), Some(event.as_str()), entities)
        }
        FactKind::EventRefused { id, event, status, reason, by } => {
            let d = vec![("event.id", id.clone())];
            (
                "event",
                "E",
                outcome_of(*status),
                Some(reason.as_str()),
                by.as_ref(),
                Some(event.as_str()),
                vec![topic_entity(d)],
            )
        }
        FactKind::SyncError { id, about_id, about_event, subscriber, source, cause, diagnostics } => {
            let d = vec![
                ("event.id", id.clone()),
                ("about.event.id", about_id.clone()),
                ("subscriber.name", subscriber.clone()),
                ("source", (*source).to_owned()),
                ("cause", cause.as_str().to_owned()),
            ];
            // Outcome 4: an app did not follow (the Hub's diagnostics say why).
            ("sync-error", "E", 4, diagnostics.as_deref(), None, Some(about_event.as_str()), vec![topic_entity(d)])
        }
        FactKind::Connected { .. }
        | FactKind::Closed { .. }
        | FactKind::Notified { .. }
        | FactKind::Answered { .. }
        | FactKind::TimedOut { .. } => return None,
    };
    let (subtype, action, outcome, desc, who, event, entities) = shape;
    let mut subtypes = vec![json!({ "system": SUBTYPE_SYSTEM, "code": subtype })];
    if let Some(e) = event {
        subtypes.push(json!({ "system": EVENT_SYSTEM, "code": e }));
    }
    let hub_agent = |requestor: bool| {
        json!({
            "type": { "coding": [{ "system": DCM, "code": "110152", "display": "Destination Role ID" }] },
            "who": { "display": "FHIRcast hub" },
            "requestor": requestor,
        })
    };
    let mut agents = Vec::new();
    // An app's SyncError is its own doing; the rest without a token's `who` is the Hub's own
    // (an expiry, a timeout), or a hub run without authorization.
    let acted_by_hub =
        who.is_none() && matches!(fact.what, FactKind::Unsubscribed { .. } | FactKind::SyncError { source: "hub", .. });
    if let Some(w) = who {
        if let Some(s) = &w.subject {
            agents.push(json!({
                "type": { "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/extra-security-role-type", "code": "humanuser", "display": "human user" }] },
                "who": { "identifier": { "value": s } },
                "requestor": true,
            }));
        }
        if let Some(c) = &w.client {
            agents.push(json!({
                "type": { "coding": [{ "system": DCM, "code": "110150", "display": "Application" }] },
                "who": { "identifier": { "value": c } },
                "requestor": w.subject.is_none(),
            }));
        }
    } else if !acted_by_hub {
        agents.push(json!({
            "type": { "coding": [{ "system": DCM, "code": "110153", "display": "Source Role ID" }] },
            "who": { "display": "unidentified (no access token)" },
            "requestor": true,
        }));
    }
    agents.push(hub_agent(acted_by_hub));
    let mut source = json!({
        "observer": { "display": "FHIRcast hub" },
        "type": [{ "system": "http://terminology.hl7.org/CodeSystem/security-source-type", "code": "4", "display": "Application Server" }],
    });
    if let Some(site) = site {
        source["site"] = site.into();
    }
    let mut audit = json!({
        "resourceType": "AuditEvent",
        "type": { "system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest", "display": "RESTful Operation" },
        "subtype": subtypes,
        "action": action,
        "recorded": fact.at.to_rfc3339(),
        "outcome": outcome.to_string(),
        "agent": agents,
        "source": source,
        "entity": entities,
    });
    if let Some(d) = desc {
        audit["outcomeDesc"] = d.into();
    }
    Some(audit)
}

/// [`audit_event`] as JSON text with `resourceType` first, as FHIR JSON is written (the
/// object's other members follow in name order).
pub fn audit_event_json(fact: &Fact, topic: &str, site: Option<&str>) -> Option<String> {
    let mut audit = audit_event(fact, topic, site)?;
    let rest = audit.as_object_mut().map(|o| {
        o.remove("resourceType");
        serde_json::to_string(o).unwrap_or_else(|_| unreachable!("JSON values serialise"))
    })?;
    Some(format!("{{\"resourceType\":\"AuditEvent\",{}", &rest[1..]))
}

/// The AuditEvent outcome of an HTTP status: 0 success, 4 refused (4xx), 8 the Hub failed.
fn outcome_of(status: u16) -> u8 {
    match status {
        200..=299 => 0,
        400..=499 => 4,
        _ => 8,
    }
}

/// An event's anchor as an entity: a reference, with the Patient role for a patient.
fn anchor_entity(reference: &str) -> Value {
    let resource_type = reference.split('/').next().unwrap_or_default();
    let role = if resource_type == "Patient" {
        json!({ "system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "1", "display": "Patient" })
    } else {
        json!({ "system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "4", "display": "Domain Resource" })
    };
    json!({
        "what": { "reference": reference },
        "type": { "system": "http://hl7.org/fhir/resource-types", "code": resource_type },
        "role": role,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::EventName;
    use crate::time::Timestamp;

    fn at(what: FactKind) -> Fact {
        Fact { at: Timestamp::from_unix_millis(1_700_000_000_000), what }
    }

    #[test]
    fn issue17_an_accepted_patient_open_names_user_client_topic_and_patient() {
        let who = Who { subject: Some("dr-who".into()), client: Some("pacs".into()) };
        let fact = at(FactKind::Event {
            id: "e1".into(),
            event: EventName::parse("Patient-open").unwrap(),
            anchor: Some("Patient/p1".into()),
            version_id: Some("v1".into()),
            duplicate: false,
            by: Some(who),
        });
        let a = audit_event(&fact, "T1", Some("radiology")).unwrap();
        assert_eq!(a["resourceType"], "AuditEvent");
        assert_eq!(a["action"], "E");
        assert_eq!(a["outcome"], "0");
        assert_eq!(a["recorded"], "2023-11-14T22:13:20.000Z");
        assert_eq!(a["subtype"][1], json!({"system": EVENT_SYSTEM, "code": "Patient-open"}));
        assert_eq!(a["agent"][0]["who"]["identifier"]["value"], "dr-who");
        assert_eq!(a["agent"][0]["requestor"], true);
        assert_eq!(a["agent"][1]["who"]["identifier"]["value"], "pacs");
        assert_eq!(a["agent"][1]["requestor"], false);
        assert_eq!(a["agent"][2]["requestor"], false);
        assert_eq!(a["source"]["site"], "radiology");
        assert_eq!(a["entity"][0]["what"]["identifier"]["value"], "T1");
        assert_eq!(a["entity"][1]["what"]["reference"], "Patient/p1");
        assert_eq!(a["entity"][1]["role"]["code"], "1");
    }

    #[test]
    fn issue17_the_json_starts_with_resource_type_and_holds_the_same_members() {
        let fact = at(FactKind::Unsubscribed { subscriber: "Viewer".into(), reason: "lease expired".into(), by: None });
        let text = audit_event_json(&fact, "T1", None).unwrap();
        assert!(text.starts_with(r#"{"resourceType":"AuditEvent","action":"D","#), "{text}");
        let back: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, audit_event(&fact, "T1", None).unwrap());
    }

    #[test]
    fn issue17_refusals_are_minor_failures_and_what_the_hub_did_itself_is_the_hubs() {
        let refused = at(FactKind::EventRefused {
            id: "e2".into(),
            event: EventName::parse("Patient-open").unwrap(),
            status: 409,
            reason: "stale".into(),
            by: None,
        });
        let a = audit_event(&refused, "T1", None).unwrap();
        assert_eq!((a["outcome"].as_str(), a["outcomeDesc"].as_str()), (Some("4"), Some("stale")));
        assert_eq!(a["agent"][0]["who"]["display"], "unidentified (no access token)");
        let expired =
            at(FactKind::Unsubscribed { subscriber: "Viewer".into(), reason: "lease expired".into(), by: None });
        let a = audit_event(&expired, "T1", None).unwrap();
        assert_eq!(a["action"], "D");
        assert_eq!(a["agent"].as_array().unwrap().len(), 1);
        assert_eq!(a["agent"][0]["requestor"], true);
        assert!(audit_event(&at(FactKind::Connected { subscriber: "V".into() }), "T1", None).is_none());
    }
}
