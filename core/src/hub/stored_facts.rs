//! The timeline's facts as the shell stores them (issue 17): one JSON element per fact, except
//! that the answers to one notification, recorded one after another, are one element.
//!
//! Why: a fan-out to N subscribers records N answers. Written one JSON object each (about 150
//! bytes: the time as RFC 3339, the notification's id and event again, the field names), they
//! were most of what recording cost at a thousand subscribers (BENCHMARKS.md, "What recording
//! costs"): the serialisation per answer, and 150 KB per event written to SQLite and deleted
//! again. Grouped, an answer is its subscriber, status, latency and time offset (about 25
//! bytes), and no JSON is built per answer until the timeline is read.
//!
//! What a reader sees does not change: [`expand`] gives back each fact exactly as
//! `serde_json::to_string(&fact)` writes it, numbered one by one (the tests check it).

use serde::{Deserialize, Serialize};

use super::timeline::{Fact, FactKind};
use crate::catalog::EventName;
use crate::time::Timestamp;

/// The most answers in one element: with names of at most 256 characters (escaped, at most
/// 1.6 KB each) an element stays far below the shell's 512 KB per row.
pub const ANSWERS_PER_ELEMENT: usize = 200;

/// The most bytes of recipients' names (as JSON) in one stored `notified` fact. A fan-out to
/// many subscribers with long names (2,000 of 256 characters, each up to 6 bytes escaped) would
/// make one fact of up to about 3 MB, over the platform's 2 MB per row, and the write carrying it
/// (the event's own) would fail on Cloudflare though it passes locally: such a fan-out is
/// stored as several `notified` facts with the same id, each naming some of the recipients.
pub const NOTIFIED_NAMES_BYTES: usize = 64 << 10;

/// How a group element starts (a single fact starts with `{"at":`).
const GROUP_PREFIX: &str = "{\"fact\":\"answers\",";

/// One stored element: its JSON and how many facts it holds (numbers are per fact).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Element {
    /// The JSON text.
    pub json: String,
    /// The facts in it (1, or the answers of a group).
    pub facts: usize,
}

/// Answers to one notification, grouped (as held and written).
#[derive(Debug, Serialize)]
struct Answers {
    /// Always "answers" (first, so [`expand`] recognises a group by its prefix).
    fact: &'static str,
    /// The notification's id.
    id: String,
    /// Its event.
    event: EventName,
    /// The first answer's time, in nanoseconds since the epoch.
    at: i64,
    /// Each answer: subscriber, status, latency (ms), time after `at` (ns).
    a: Vec<(String, u16, u64, i64)>,
}

/// A group as read back: the event name stays the text stored (never parsed again, so a
/// stricter parser later cannot make an old timeline unreadable).
#[derive(Deserialize)]
struct StoredAnswers {
    id: String,
    event: String,
    at: i64,
    a: Vec<(String, u16, u64, i64)>,
}

/// One answer as [`Fact`] serialises an `answered` fact (the tests check byte equality).
#[derive(Serialize)]
struct AnsweredFact<'a> {
    at: Timestamp,
    fact: &'static str,
    subscriber: &'a str,
    id: &'a str,
    event: &'a str,
    status: u16,
    #[serde(rename = "latencyMs")]
    latency_ms: u64,
}

/// Only the number of answers of a group, for [`count`].
#[derive(Deserialize)]
struct AnswerCount {
    a: Vec<serde::de::IgnoredAny>,
}

/// Facts not yet stored, grouped as they come.
#[derive(Debug, Default)]
pub struct StoredFacts {
    done: Vec<Element>,
    group: Option<Answers>,
    facts: usize,
}

impl StoredFacts {
    /// Adds one fact (taken: an answer's subscriber name moves into its group).
    pub fn push(&mut self, fact: Fact) {
        self.facts += 1;
        if let FactKind::Answered { subscriber, id, event, status, latency_ms } = fact.what {
            let at = fact.at.unix_nanos();
            if let Some(g) = &mut self.group {
                if g.id == id && g.event == event && g.a.len() < ANSWERS_PER_ELEMENT {
                    g.a.push((subscriber, status, latency_ms, at.saturating_sub(g.at)));
                    return;
                }
            }
            self.close_group();
            self.group = Some(Answers { fact: "answers", id, event, at, a: vec![(subscriber, status, latency_ms, 0)] });
            return;
        }
        self.close_group();
        if let FactKind::Notified { to, .. } = &fact.what {
            // Worst case 6 bytes a character (\u escapes) and 3 of quotes and comma: measured
            // exactly only when the bound could be passed.
            if to.iter().map(|n| n.len() * 6 + 3).sum::<usize>() > NOTIFIED_NAMES_BYTES {
                return self.push_notified_in_parts(fact);
            }
        }
        self.done.push(Element { json: serde_json::to_string(&fact).expect("facts serialise"), facts: 1 });
    }

    /// A `notified` fact too large for one element, as several with the recipients in order.
    fn push_notified_in_parts(&mut self, fact: Fact) {
        let FactKind::Notified { id, event, to, derived_from } = fact.what else { unreachable!("notified") };
        let mut parts: Vec<Vec<String>> = vec![Vec::new()];
        let mut bytes = 0;
        for name in to {
            let len = serde_json::to_string(&name).expect("a string").len() + 1;
            if bytes + len > NOTIFIED_NAMES_BYTES && !parts.last().expect("one").is_empty() {
                parts.push(Vec::new());
                bytes = 0;
            }
            bytes += len;
            parts.last_mut().expect("one").push(name);
        }
        self.facts += parts.len() - 1;
        for to in parts {
            let what =
                FactKind::Notified { id: id.clone(), event: event.clone(), to, derived_from: derived_from.clone() };
            let json = serde_json::to_string(&Fact { at: fact.at, what }).expect("facts serialise");
            self.done.push(Element { json, facts: 1 });
        }
    }

    fn close_group(&mut self) {
        if let Some(g) = self.group.take() {
            let facts = g.a.len();
            let json = if facts == 1 {
                // One answer alone is stored as the fact itself.
                let (subscriber, status, latency_ms, _) = g.a.into_iter().next().expect("one");
                let what = FactKind::Answered { subscriber, id: g.id, event: g.event, status, latency_ms };
                serde_json::to_string(&Fact { at: Timestamp::from_unix_nanos(g.at), what }).expect("facts serialise")
            } else {
                serde_json::to_string(&g).expect("answers serialise")
            };
            self.done.push(Element { json, facts });
        }
    }

    /// How many facts are held.
    pub fn len(&self) -> usize {
        self.facts
    }

    /// Nothing is held.
    pub fn is_empty(&self) -> bool {
        self.facts == 0
    }

    /// Puts back elements [`StoredFacts::take`] gave that could not be stored, before any
    /// held since.
    pub fn restore(&mut self, mut elements: Vec<Element>) {
        self.facts += elements.iter().map(|e| e.facts).sum::<usize>();
        elements.append(&mut self.done);
        self.done = elements;
    }

    /// The elements to store, oldest first; empties the buffer.
    pub fn take(&mut self) -> Vec<Element> {
        self.close_group();
        self.facts = 0;
        std::mem::take(&mut self.done)
    }
}

/// How many facts a stored element holds, without reading it whole when it is one fact.
pub fn count(element: &str) -> Result<usize, serde_json::Error> {
    if !element.starts_with(GROUP_PREFIX) {
        return Ok(1);
    }
    let g: AnswerCount = serde_json::from_str(element)?;
    Ok(g.a.len())
}

/// The facts of a stored element, each as `serde_json::to_string(&fact)` writes it.
pub fn expand(element: &str) -> Result<Vec<String>, serde_json::Error> {
    if !element.starts_with(GROUP_PREFIX) {
        return Ok(vec![element.to_owned()]);
    }
    let g: StoredAnswers = serde_json::from_str(element)?;
    Ok(g.a
        .iter()
        .map(|(subscriber, status, latency_ms, after)| {
            let fact = AnsweredFact {
                at: Timestamp::from_unix_nanos(g.at.saturating_add(*after)),
                fact: "answered",
                subscriber,
                id: &g.id,
                event: &g.event,
                status: *status,
                latency_ms: *latency_ms,
            };
            serde_json::to_string(&fact).expect("facts serialise")
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::timeline::SyncErrorCause;

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_unix_millis(1_764_800_000_000 + ms)
    }

    fn answered(ms: i64, who: &str, id: &str, status: u16) -> Fact {
        Fact {
            at: at(ms),
            what: FactKind::Answered {
                subscriber: who.into(),
                id: id.into(),
                event: EventName::parse("Patient-open").unwrap(),
                status,
                latency_ms: ms as u64,
            },
        }
    }

    fn notified(ms: i64, id: &str, to: &[&str]) -> Fact {
        Fact {
            at: at(ms),
            what: FactKind::Notified {
                id: id.into(),
                event: EventName::parse("Patient-open").unwrap(),
                to: to.iter().map(|s| s.to_string()).collect(),
                derived_from: None,
            },
        }
    }

    fn round_trip(facts: &[Fact]) -> (Vec<Element>, Vec<String>) {
        let mut buf = StoredFacts::default();
        for f in facts {
            buf.push(f.clone());
        }
        assert_eq!(buf.len(), facts.len());
        let elements = buf.take();
        assert!(buf.is_empty());
        let mut out = Vec::new();
        for e in &elements {
            let facts = expand(&e.json).unwrap();
            assert_eq!(facts.len(), e.facts, "{}", e.json);
            assert_eq!(count(&e.json).unwrap(), e.facts);
            out.extend(facts);
        }
        (elements, out)
    }

    #[test]
    fn issue17_stored_facts_read_back_exactly_as_serialised_in_order() {
        let sync_error = Fact {
            at: at(9),
            what: FactKind::SyncError {
                id: "se".into(),
                about_id: "e1".into(),
                about_event: EventName::parse("Patient-open").unwrap(),
                subscriber: "b\"quoted\" \u{1} é".into(),
                source: "hub",
                cause: SyncErrorCause::Refused,
                diagnostics: Some("b refused".into()),
            },
        };
        let facts = vec![
            notified(0, "e1", &["a", "b\"quoted\" \u{1} é", "c"]),
            answered(1, "a", "e1", 200),
            answered(3, "b\"quoted\" \u{1} é", "e1", 409),
            sync_error,
            answered(12, "c", "e1", 202),
            notified(20, "e2", &["a", "c"]),
            answered(21, "c", "e1", 200),
            answered(22, "a", "e2", 200),
            answered(22, "c", "e2", 200),
        ];
        let (elements, out) = round_trip(&facts);
        let expected: Vec<String> = facts.iter().map(|f| serde_json::to_string(f).unwrap()).collect();
        assert_eq!(out, expected);
        // Grouped: the two answers to e1 before the SyncError are one element, the two to e2
        // another; a lone answer is stored as its fact.
        assert_eq!(elements.iter().map(|e| e.facts).collect::<Vec<_>>(), vec![1, 2, 1, 1, 1, 1, 2]);
        assert!(elements[1].json.starts_with(GROUP_PREFIX));
        assert_eq!(elements[5].json, expected[6]);
    }

    #[test]
    fn issue17_a_large_fan_out_is_split_into_bounded_elements_much_smaller_than_its_facts() {
        let names: Vec<String> = (0..1000).map(|i| format!("subscriber-{i}")).collect();
        let mut facts = vec![notified(0, "e1", &names.iter().map(String::as_str).collect::<Vec<_>>())];
        facts.extend(names.iter().enumerate().map(|(i, n)| answered(1 + i as i64 / 10, n, "e1", 200)));
        let (elements, out) = round_trip(&facts);
        let expected: Vec<String> = facts.iter().map(|f| serde_json::to_string(f).unwrap()).collect();
        assert_eq!(out, expected);
        assert_eq!(elements.len(), 1 + 1000 / ANSWERS_PER_ELEMENT);
        assert!(elements[1..].iter().all(|e| e.facts == ANSWERS_PER_ELEMENT));
        let stored: usize = elements[1..].iter().map(|e| e.json.len()).sum();
        let plain: usize = expected[1..].iter().map(String::len).sum();
        assert!(stored * 3 < plain, "grouped {stored} B against {plain} B one by one");
    }

    #[test]
    fn issue17_a_fan_out_to_many_long_names_is_stored_as_notified_facts_each_under_the_bound() {
        // 2,000 subscribers (the default maximum) named with 256 characters, some escaped.
        let names: Vec<String> = (0..2000).map(|i| format!("{i:04}{}", "\u{1}é".repeat(126))).collect();
        let fact = notified(0, "e1", &names.iter().map(String::as_str).collect::<Vec<_>>());
        let whole = serde_json::to_string(&fact).unwrap();
        assert!(whole.len() > 2_000_000, "{} B: the case the bound is for", whole.len());
        let mut buf = StoredFacts::default();
        buf.push(fact);
        let n = buf.len();
        let elements = buf.take();
        assert!(n > 1 && n == elements.len(), "{n} facts in {} elements", elements.len());
        let mut to = Vec::new();
        for e in &elements {
            assert!(e.json.len() < NOTIFIED_NAMES_BYTES + 1024, "{} B", e.json.len());
            let f: serde_json::Value = serde_json::from_str(&expand(&e.json).unwrap()[0]).unwrap();
            assert_eq!((f["fact"].as_str(), f["id"].as_str()), (Some("notified"), Some("e1")));
            to.extend(f["to"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()));
        }
        assert_eq!(to, names, "every recipient, in order");
        // A usual fan-out stays one fact.
        let mut buf = StoredFacts::default();
        buf.push(notified(0, "e2", &["a", "b"]));
        assert_eq!(buf.take().len(), 1);
    }

    #[test]
    fn issue17_elements_not_stored_are_put_back_before_newer_ones() {
        let mut buf = StoredFacts::default();
        buf.push(notified(0, "e1", &["a", "b"]));
        buf.push(answered(1, "a", "e1", 200));
        buf.push(answered(2, "b", "e1", 200));
        let failed = buf.take();
        buf.push(notified(3, "e2", &["a"]));
        buf.restore(failed);
        assert_eq!(buf.len(), 4);
        let facts: Vec<String> = buf.take().iter().flat_map(|e| expand(&e.json).unwrap()).collect();
        let ids: Vec<serde_json::Value> =
            facts.iter().map(|f| serde_json::from_str::<serde_json::Value>(f).unwrap()["id"].clone()).collect();
        assert_eq!(ids, ["e1", "e1", "e1", "e2"]);
    }

    #[test]
    fn issue17_a_single_fact_is_counted_without_parsing_and_a_damaged_group_is_an_error() {
        assert_eq!(count("{\"at\":\"x\"}").unwrap(), 1);
        // A stored event name is given back as stored, whatever the parser of the day says.
        let odd = r#"{"fact":"answers","id":"e","event":"not an event!","at":0,"a":[["a",200,1,0],["b",409,2,5]]}"#;
        assert_eq!(count(odd).unwrap(), 2);
        assert!(expand(odd).unwrap()[1].contains(r#""subscriber":"b","id":"e","event":"not an event!","status":409"#));
        assert!(expand("{\"fact\":\"answers\",\"id\":1}").is_err());
        assert!(count("{\"fact\":\"answers\",").is_err());
    }
}
