//! Structure-aware input generation shared by the targets.
//!
//! A target asks for text with [`text`]: raw bytes (lossily UTF-8), a valid template, a
//! template damaged by [`mutate`], or a JSON value built from the protocol's own keys
//! ([`json_value`]). The choices are all read from the [`Unstructured`] input, so libFuzzer
//! learns which choices reach new code, and the seeded run covers every branch.

use arbitrary::{Result, Unstructured};
use serde_json::{Map, Value};

/// Fragments that tend to break parsers: JSON edge cases, form-encoding edge cases, FHIRcast
/// keys and names, numbers at type limits, lone surrogates, and long or deep values.
pub const DICT: &[&str] = &[
    "null",
    "true",
    "0",
    "-1",
    "1e999",
    "-0.0",
    "18446744073709551616",
    "65536",
    "\"\"",
    "\"\\u0000\"",
    "\"\\ud800\"",
    "[]",
    "{}",
    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
    "{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{}}}}}}",
    "}}}}",
    ",",
    ":",
    "\"",
    "\\",
    "\"Patient-open\"",
    "\"patient-OPEN\"",
    "\"DiagnosticReport-update\"",
    "\"SyncError\"",
    "\"Home-open\"",
    "\"org.example.thing\"",
    "\"*\"",
    "\"patient\"",
    "\"report\"",
    "\"updates\"",
    "\"resource\"",
    "\"reference\"",
    "\"context.versionId\"",
    "\"context.priorVersionId\"",
    "\"hub.topic\"",
    "\"hub.event\"",
    "\"resourceType\"",
    "\"Bundle\"",
    "\"transaction\"",
    "\"collection\"",
    "\"PUT\"",
    "\"DELETE\"",
    "\"POST\"",
    "\"fullUrl\"",
    "\"Observation/x\"",
    "\"2026-01-01T00:00:00Z\"",
    "\"2023-04-01T010:38:04.16\"",
    "\"9999-12-31T23:59:60.999999999+14:00\"",
    "%",
    "%zz",
    "%00",
    "%C3%28",
    "%E2%82",
    "&",
    "=",
    "+",
    "hub.mode=",
    "hub.events=",
    "&hub.topic=T1",
    "&hub.events=Patient-open,patient-open,,*",
    "&hub.lease_seconds=",
    "&hub.channel.endpoint=",
    "wss://h/api/hub/ws/T1/",
    "é𝄞",
    "\u{feff}",
    "\r\n",
    " ",
];

/// Event names: catalogued, generic, custom, wrong case, and not names at all.
pub const NAMES: &[&str] = &[
    "Patient-open",
    "Patient-close",
    "patient-OPEN",
    "Encounter-open",
    "Encounter-close",
    "ImagingStudy-open",
    "ImagingStudy-close",
    "DiagnosticReport-open",
    "DiagnosticReport-close",
    "DiagnosticReport-update",
    "DiagnosticReport-select",
    "Observation-open",
    "SyncError",
    "syncerror",
    "UserLogout",
    "UserHibernate",
    "Home-open",
    "heartbeat",
    "org.example.thing",
    "*",
    "*-open",
    "",
    "Patient-",
    "-open",
    "Patient-open-close",
];

/// One element of `items`, chosen by the input.
pub fn pick<'a, T>(u: &mut Unstructured<'_>, items: &'a [T]) -> Result<&'a T> {
    u.choose(items)
}

/// Text for a parser: raw, a template as is, a damaged template, or generated JSON.
pub fn text(u: &mut Unstructured<'_>, templates: &[String]) -> Result<String> {
    Ok(match u.int_in_range(0..=9u8)? {
        0 => raw(u)?,
        1 | 2 => pick(u, templates)?.clone(),
        3 => serde_json::to_string(&json_value(u, 0)?).expect("a Value serialises"),
        _ => {
            let t = pick(u, templates)?.clone();
            mutate(u, t)?
        }
    })
}

/// Arbitrary bytes as text (invalid UTF-8 replaced, as a shell that reads text would).
pub fn raw(u: &mut Unstructured<'_>) -> Result<String> {
    let len = u.arbitrary_len::<u8>()?.min(4096);
    Ok(String::from_utf8_lossy(u.bytes(len)?).into_owned())
}

/// Damages `text` with one to four edits: insert a [`DICT`] fragment, delete a range,
/// replace a range with a fragment, repeat a range, truncate, or change one byte.
pub fn mutate(u: &mut Unstructured<'_>, text: String) -> Result<String> {
    let mut b = text.into_bytes();
    for _ in 0..u.int_in_range(1..=4u8)? {
        let len = b.len();
        let at = u.int_in_range(0..=len)?;
        let end = (at + u.int_in_range(0..=16usize)?).min(len);
        match u.int_in_range(0..=5u8)? {
            0 => {
                let f = pick(u, DICT)?.as_bytes();
                b.splice(at..at, f.iter().copied());
            }
            1 => {
                b.drain(at..end);
            }
            2 => {
                let f = pick(u, DICT)?.as_bytes();
                b.splice(at..end, f.iter().copied());
            }
            3 => {
                let piece: Vec<u8> = b[at..end].to_vec();
                let times = u.int_in_range(1..=64usize)?;
                for _ in 0..times {
                    b.splice(at..at, piece.iter().copied());
                }
            }
            4 => b.truncate(at),
            _ => {
                if at < len {
                    b[at] = u.arbitrary()?;
                }
            }
        }
    }
    Ok(String::from_utf8_lossy(&b).into_owned())
}

const KEYS: &[&str] = &[
    "timestamp",
    "id",
    "event",
    "hub.topic",
    "hub.event",
    "context",
    "context.versionId",
    "context.priorVersionId",
    "key",
    "resource",
    "reference",
    "resourceType",
    "type",
    "entry",
    "request",
    "method",
    "url",
    "fullUrl",
    "status",
    "issue",
    "details",
    "coding",
    "system",
    "code",
    "diagnostics",
    "severity",
    "link",
    "hub.mode",
    "hub.events",
    "hub.lease_seconds",
    "hub.channel.endpoint",
    "subscriber.name",
];

/// A JSON value whose object keys come from the protocol, nested at most 6 deep.
pub fn json_value(u: &mut Unstructured<'_>, depth: u8) -> Result<Value> {
    let leaf = depth >= 6;
    Ok(match u.int_in_range(0..=if leaf { 5 } else { 8u8 })? {
        0 => Value::Null,
        1 => Value::Bool(u.arbitrary()?),
        2 => Value::from(u.arbitrary::<i64>()?),
        3 => serde_json::Number::from_f64(u.arbitrary()?).map(Value::Number).unwrap_or(Value::Null),
        4 => Value::String(pick(u, NAMES)?.to_string()),
        5 => Value::String(u.arbitrary::<String>()?),
        6 | 7 => {
            let mut m = Map::new();
            for _ in 0..u.int_in_range(0..=6u8)? {
                m.insert(pick(u, KEYS)?.to_string(), json_value(u, depth + 1)?);
            }
            Value::Object(m)
        }
        _ => {
            let n = u.int_in_range(0..=4u8)?;
            Value::Array((0..n).map(|_| json_value(u, depth + 1)).collect::<Result<_>>()?)
        }
    })
}
