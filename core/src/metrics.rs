//! Metrics (issue 17): one Workers Analytics Engine data point per fact that counts — events,
//! answers (with their latency), timeouts, SyncErrors (by cause), subscriptions — made from the
//! topic's recorded facts ([`crate::hub::timeline`]). The shell writes them when a dataset is
//! bound; README "Metrics" has the queries.
//!
//! The columns are fixed, so queries stay valid as the hub changes:
//!
//! | column | holds |
//! |---|---|
//! | `index1` | the topic (the sampling key: a session is sampled whole), at most 96 bytes |
//! | `blob1` | the metric: `event`, `answer`, `timeout`, `sync_error`, `subscription` |
//! | `blob2` | the FHIRcast event (`Patient-open`, …); empty for subscriptions |
//! | `blob3` | the outcome: `accepted` / `refused` / `duplicate` (events), the status (answers), the cause (SyncErrors), `subscribed` / `unsubscribed` / `closed` (subscriptions) |
//! | `blob4` | the subscriber's name (answers, timeouts, SyncErrors, subscriptions) |
//! | `blob5` | more: why a subscription ended, `hub` or `subscriber` for SyncErrors, the close code |
//! | `double1` | 1 (a count: sum `_sample_interval × double1`) |
//! | `double2` | the answer's latency in ms (answers), else 0 |
//! | `double3` | the HTTP status (answers, refused events), else 0 |
//!
//! No resource content, no anchor ids: counts and latencies only.

use crate::hub::{Fact, FactKind};

/// The longest index Analytics Engine takes, in bytes.
pub const MAX_INDEX_BYTES: usize = 96;

/// One data point, as `writeDataPoint` takes it.
#[derive(Clone, Debug, PartialEq)]
pub struct DataPoint {
    /// `indexes[0]`.
    pub index: String,
    /// `blobs`, in the column order above.
    pub blobs: [String; 5],
    /// `doubles`, in the column order above.
    pub doubles: [f64; 3],
}

/// The data point of `fact` on `topic`, or `None` for a fact not counted (notifications,
/// connects: the answers and subscriptions say what matters).
pub fn data_point(fact: &Fact, topic: &str) -> Option<DataPoint> {
    let s = |v: &str| v.to_owned();
    let (metric, event, outcome, subscriber, more, latency, status) = match &fact.what {
        FactKind::Event { event, duplicate, .. } => (
            "event",
            event.to_string(),
            s(if *duplicate { "duplicate" } else { "accepted" }),
            String::new(),
            String::new(),
            0.0,
            0.0,
        ),
        FactKind::EventRefused { event, status, .. } => {
            ("event", event.to_string(), s("refused"), String::new(), String::new(), 0.0, f64::from(*status))
        }
        FactKind::Answered { subscriber, event, status, latency_ms, .. } => (
            "answer",
            event.to_string(),
            status.to_string(),
            subscriber.clone(),
            String::new(),
            *latency_ms as f64,
            f64::from(*status),
        ),
        FactKind::TimedOut { subscriber, event, .. } => {
            ("timeout", event.to_string(), s("no answer"), subscriber.clone(), String::new(), 0.0, 0.0)
        }
        FactKind::SyncError { about_event, subscriber, source, cause, .. } => {
            ("sync_error", about_event.to_string(), s(cause.as_str()), subscriber.clone(), s(source), 0.0, 0.0)
        }
        FactKind::Subscribed { subscriber, renewed, .. } => (
            "subscription",
            String::new(),
            s(if *renewed { "renewed" } else { "subscribed" }),
            subscriber.clone(),
            String::new(),
            0.0,
            0.0,
        ),
        FactKind::Unsubscribed { subscriber, reason, .. } => {
            ("subscription", String::new(), s("unsubscribed"), subscriber.clone(), reason.clone(), 0.0, 0.0)
        }
        FactKind::Closed { subscriber, code } => {
            ("subscription", String::new(), s("closed"), subscriber.clone(), code.to_string(), 0.0, 0.0)
        }
        FactKind::SubscribeRefused { status, .. } => {
            ("subscription", String::new(), s("refused"), String::new(), String::new(), 0.0, f64::from(*status))
        }
        FactKind::Connected { .. } | FactKind::Notified { .. } => return None,
    };
    Some(DataPoint {
        index: truncate(topic, MAX_INDEX_BYTES).to_owned(),
        blobs: [s(metric), event, outcome, subscriber, more],
        doubles: [1.0, latency, status],
    })
}

/// The longest prefix of `s` within `max` bytes, on a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::EventName;
    use crate::hub::SyncErrorCause;
    use crate::time::Timestamp;

    fn at(what: FactKind) -> Fact {
        Fact { at: Timestamp::from_unix_millis(1_700_000_000_000), what }
    }

    #[test]
    fn issue17_answers_carry_latency_and_status_sync_errors_their_cause() {
        let open = EventName::parse("Patient-open").unwrap();
        let answer = at(FactKind::Answered {
            subscriber: "Viewer".into(),
            id: "e1".into(),
            event: open.clone(),
            status: 409,
            latency_ms: 42,
        });
        let p = data_point(&answer, "T1").unwrap();
        assert_eq!(p.index, "T1");
        assert_eq!(p.blobs, ["answer", "Patient-open", "409", "Viewer", ""].map(String::from));
        assert_eq!(p.doubles, [1.0, 42.0, 409.0]);
        let sync_error = at(FactKind::SyncError {
            id: "s1".into(),
            about_id: "e1".into(),
            about_event: open,
            subscriber: "Viewer".into(),
            source: "hub",
            cause: SyncErrorCause::Refused,
            diagnostics: Some("Viewer refused".into()),
        });
        assert_eq!(
            data_point(&sync_error, "T1").unwrap().blobs,
            ["sync_error", "Patient-open", "refused", "Viewer", "hub"].map(String::from)
        );
        assert!(data_point(&at(FactKind::Connected { subscriber: "V".into() }), "T1").is_none());
    }

    #[test]
    fn issue17_the_index_is_cut_to_96_bytes_on_a_character_boundary() {
        let topic = "é".repeat(60); // 120 bytes
        let closed = at(FactKind::Closed { subscriber: "V".into(), code: 1006 });
        let p = data_point(&closed, &topic).unwrap();
        assert_eq!(p.index.len(), 96);
        assert_eq!(p.blobs[2], "closed");
        assert_eq!(p.blobs[4], "1006");
    }
}
