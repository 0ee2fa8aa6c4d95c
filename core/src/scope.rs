//! FHIRcast OAuth scopes (req 16-18): `fhircast/<event-name>.read`, `fhircast/*.*`, ...
//!
//! The grammar (req 16, `ebnf/input/scopes.ebnf`) is `fhircast/` then an event name or `*`,
//! then `.`, then `read`, `write` or `*`. Event names compare case-insensitively (req 34), so
//! `fhircast/patient-open.read` and `fhircast/Patient-open.read` are the same scope; the rest of
//! the grammar is also read case-insensitively, since nothing is gained by refusing
//! `FHIRcast/Patient-open.READ`. Scopes are always shown canonically (`fhircast/Patient-open.read`).
//!
//! **A scope names exactly one event, or `*` for all of them.** The spec writes `*-open` in its
//! prose, but that is documentation shorthand (req 36), not a pattern: `*` is the only wildcard
//! and it stands alone. So `fhircast/Patient-open.read` allows `Patient-open` and nothing else;
//! not `Patient-close`, not `Encounter-open`, not `SyncError`. A Hub that wants an app to follow
//! a patient context grants both `Patient-open` and `Patient-close`. Keeping the rule exact makes
//! [`Scopes::allows`] a plain lookup whose answer a developer can predict from the token alone.
//!
//! The check is by event name only. Req 18 speaks of the *resources* a subscriber may receive;
//! the events a Hub derives (req 97) carry resources of other events, and whether those need
//! their own scope is the Hub's decision, made by calling [`Scopes::allows`] for each event it
//! is about to send.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::catalog::{EventName, EventNameError};

/// What a scope lets its holder do with an event (req 17).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    /// Receive the event: subscribe to it and be sent it.
    Read,
    /// Send the event: request a context change with it.
    Write,
}

/// One `fhircast/` scope (req 16).
///
/// A scope with neither `read` nor `write` grants nothing; [`Scopes`] never keeps one, and its
/// [`Display`](fmt::Display) form (`fhircast/<event>.none`) is deliberately not parseable.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scope {
    /// The event the scope is about; `None` is the `*` wildcard, which means every event.
    pub event: Option<EventName>,
    /// Whether the scope allows receiving the event (`.read` or `.*`).
    pub read: bool,
    /// Whether the scope allows sending the event (`.write` or `.*`).
    pub write: bool,
}

impl Scope {
    /// `fhircast/*.*`: every event, both ways (what a Hub grants in open mode, without OAuth).
    pub fn all() -> Scope {
        Scope { event: None, read: true, write: true }
    }

    /// Whether this scope allows `access` to `event`: the scope's event must be `*` or equal
    /// `event` (case-insensitively, as [`EventName`] compares), never a related event.
    pub fn allows(&self, event: &EventName, access: Access) -> bool {
        let event_ok = self.event.as_ref().is_none_or(|e| e == event);
        let access_ok = match access {
            Access::Read => self.read,
            Access::Write => self.write,
        };
        event_ok && access_ok
    }
}

/// Why a string is not a `fhircast/` scope (req 16).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScopeError {
    /// The scope does not start with `fhircast/`.
    #[error("{0:?} is not a FHIRcast scope: it must start with \"fhircast/\" (req 16)")]
    NotFhircast(String),
    /// The scope contains whitespace: OAuth scope strings are space-separated lists of tokens.
    #[error("{0:?}: a scope cannot contain whitespace; separate scopes with single spaces (req 16)")]
    Whitespace(String),
    /// No `.read`, `.write` or `.*` after the event.
    #[error("{0:?} has no access part: expected fhircast/<event-name or *>.<read, write or *> (req 16)")]
    MissingAccess(String),
    /// The part after the last `.` is not `read`, `write` or `*`.
    #[error("{scope:?}: access {access:?} is not one of read, write, * (req 16)")]
    BadAccess {
        /// The scope.
        scope: String,
        /// The part after the last `.`.
        access: String,
    },
    /// The event part is neither `*` nor an event name (`*-open` is not a scope: req 36).
    #[error("{scope:?}: the event part is neither * nor an event name: {reason} (req 16)")]
    BadEvent {
        /// The scope.
        scope: String,
        /// Why the event part is not an event name.
        reason: EventNameError,
    },
}

impl FromStr for Scope {
    type Err = ScopeError;

    /// Parses one scope such as `fhircast/Patient-open.read` or `fhircast/*.*`.
    fn from_str(s: &str) -> Result<Scope, ScopeError> {
        const PREFIX: &str = "fhircast/";
        if s.chars().any(char::is_whitespace) {
            return Err(ScopeError::Whitespace(s.to_owned()));
        }
        let rest = match s.get(..PREFIX.len()) {
            Some(p) if p.eq_ignore_ascii_case(PREFIX) => &s[PREFIX.len()..],
            _ => return Err(ScopeError::NotFhircast(s.to_owned())),
        };
        // Split at the *last* dot: reverse-domain event names contain dots (req 135).
        let Some((event, access)) = rest.rsplit_once('.') else {
            return Err(ScopeError::MissingAccess(s.to_owned()));
        };
        let (read, write) = match access.to_ascii_lowercase().as_str() {
            "read" => (true, false),
            "write" => (false, true),
            "*" => (true, true),
            _ => return Err(ScopeError::BadAccess { scope: s.to_owned(), access: access.to_owned() }),
        };
        let event = match event {
            "*" => None,
            name => {
                Some(EventName::parse(name).map_err(|reason| ScopeError::BadEvent { scope: s.to_owned(), reason })?)
            }
        };
        Ok(Scope { event, read, write })
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let access = match (self.read, self.write) {
            (true, true) => "*",
            (true, false) => "read",
            (false, true) => "write",
            (false, false) => "none",
        };
        match &self.event {
            Some(e) => write!(f, "fhircast/{e}.{access}"),
            None => write!(f, "fhircast/*.{access}"),
        }
    }
}

/// The `fhircast/` scopes granted to a client, e.g. read from an access token's `scope`.
///
/// Kept canonical so that equality means "grants the same": scopes on the same event are merged
/// (`.read` plus `.write` becomes `.*`), scopes granting nothing are dropped, and the list is
/// sorted (`*` first, then events by canonical name). Serialises as the space-separated string
/// OAuth uses (`"fhircast/*.read fhircast/Patient-open.write"`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scopes {
    scopes: Vec<Scope>,
}

impl Scopes {
    /// Reads an OAuth `scope` string leniently: keeps the `fhircast/` scopes, and silently skips
    /// every other scope (`openid`, `launch`, `patient/*.read`) as well as malformed `fhircast/`
    /// ones. Right for a token a Hub is handed: an authorization server may grant more than we
    /// understand, and a scope we cannot read grants nothing.
    pub fn parse(space_separated: &str) -> Scopes {
        Scopes::from_scopes(space_separated.split_whitespace().filter_map(|s| s.parse().ok()).collect())
    }

    /// Like [`Scopes::parse`], but a malformed `fhircast/` scope is an error instead of being
    /// skipped: right for configuration, where a typo should not silently grant less. Scopes not
    /// starting with `fhircast/` are still skipped.
    pub fn parse_strict(space_separated: &str) -> Result<Scopes, ScopeError> {
        let mut v = Vec::new();
        for s in space_separated.split_whitespace() {
            match s.parse::<Scope>() {
                Ok(scope) => v.push(scope),
                Err(ScopeError::NotFhircast(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Scopes::from_scopes(v))
    }

    /// Builds the canonical set from a list of scopes (merged, empty ones dropped, sorted).
    pub fn from_scopes(v: Vec<Scope>) -> Scopes {
        let mut scopes: Vec<Scope> = Vec::with_capacity(v.len());
        for s in v.into_iter().filter(|s| s.read || s.write) {
            match scopes.iter_mut().find(|t| t.event == s.event) {
                Some(t) => {
                    t.read |= s.read;
                    t.write |= s.write;
                }
                None => scopes.push(s),
            }
        }
        scopes.sort();
        Scopes { scopes }
    }

    /// `fhircast/*.*`: every event, both ways (open mode, when a Hub runs without OAuth).
    pub fn all() -> Scopes {
        Scopes { scopes: vec![Scope::all()] }
    }

    /// Whether some scope allows `access` to exactly `event`, or to `*` (req 17-18; see the
    /// module docs for why `Patient-open` does not imply `Patient-close`).
    pub fn allows(&self, event: &EventName, access: Access) -> bool {
        self.scopes.iter().any(|s| s.allows(event, access))
    }

    /// Whether no `fhircast/` scope was granted: such a client may do nothing with the Hub.
    pub fn is_empty(&self) -> bool {
        self.scopes.is_empty()
    }

    /// The scopes, in canonical order.
    pub fn iter(&self) -> impl Iterator<Item = &Scope> {
        self.scopes.iter()
    }
}

impl fmt::Display for Scopes {
    /// The space-separated OAuth form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.scopes.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{s}")?;
        }
        Ok(())
    }
}

impl Serialize for Scopes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Scopes {
    /// Strict ([`Scopes::parse_strict`]): a stored scope string that no longer parses is a bug
    /// to report, not a grant to shrink silently.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Scopes::parse_strict(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> EventName {
        EventName::parse(s).unwrap()
    }

    fn scope(s: &str) -> Scope {
        s.parse().unwrap()
    }

    #[test]
    fn req16_scope_grammar() {
        assert_eq!(
            scope("fhircast/Patient-open.read"),
            Scope { event: Some(n("Patient-open")), read: true, write: false }
        );
        assert_eq!(
            scope("fhircast/Patient-close.write"),
            Scope { event: Some(n("Patient-close")), read: false, write: true }
        );
        assert_eq!(scope("fhircast/*.*"), Scope::all());
        assert_eq!(scope("fhircast/*.read"), Scope { event: None, read: true, write: false });
        assert_eq!(
            scope("fhircast/DiagnosticReport-update.*"),
            Scope { event: Some(n("DiagnosticReport-update")), read: true, write: true }
        );
        // Reverse-domain names contain dots: the access part is after the last one.
        assert_eq!(scope("fhircast/org.example.thing.read").event, Some(n("org.example.thing")));
        assert_eq!(scope("fhircast/SyncError.read").event, Some(n("SyncError")));
    }

    #[test]
    fn req16_req34_scope_event_names_are_case_insensitive_and_shown_canonically() {
        assert_eq!(scope("fhircast/patient-open.write"), scope("fhircast/Patient-open.write"));
        assert_eq!(scope("fhircast/patient-open.write").to_string(), "fhircast/Patient-open.write");
        assert_eq!(scope("FHIRcast/syncerror.READ").to_string(), "fhircast/SyncError.read");
        assert_eq!(scope("fhircast/*.*").to_string(), "fhircast/*.*");
        assert_eq!(scope("fhircast/*.write").to_string(), "fhircast/*.write");
        for s in ["fhircast/Patient-open.read", "fhircast/*.*", "fhircast/Home-open.write", "fhircast/org.example.x.*"]
        {
            assert_eq!(scope(s).to_string(), s);
            assert_eq!(scope(&scope(s).to_string()), scope(s));
        }
    }

    #[test]
    fn req16_malformed_scopes_are_rejected_with_a_reason() {
        let err = |s: &str| s.parse::<Scope>().unwrap_err();
        assert!(matches!(err("patient/*.read"), ScopeError::NotFhircast(_)));
        assert!(matches!(err("openid"), ScopeError::NotFhircast(_)));
        assert!(matches!(err(""), ScopeError::NotFhircast(_)));
        assert!(matches!(err("fhircast/Patient-open"), ScopeError::MissingAccess(_)));
        assert!(matches!(err("fhircast/Patient-open.rw"), ScopeError::BadAccess { .. }));
        assert!(matches!(err("fhircast/Patient-open."), ScopeError::BadAccess { .. }));
        assert!(matches!(err("fhircast/.read"), ScopeError::BadEvent { reason: EventNameError::Empty, .. }));
        assert!(matches!(err("fhircast/Foo-open.read"), ScopeError::BadEvent { .. }));
        assert!(matches!(err("fhircast/Patient open.read"), ScopeError::Whitespace(_)));
        // `*-open` is prose shorthand, not a scope (req 36).
        assert!(matches!(
            err("fhircast/*-open.read"),
            ScopeError::BadEvent { reason: EventNameError::Wildcard(_), .. }
        ));
        let msg = err("fhircast/Patient-open.rw").to_string();
        assert!(msg.contains("\"rw\"") && msg.contains("req 16"), "{msg}");
    }

    #[test]
    fn req7_oauth_scope_strings_keep_only_fhircast_scopes() {
        let s = Scopes::parse("openid fhirUser launch patient/*.read fhircast/Patient-open.read fhircast/bogus fhircast/patient-close.read");
        let shown: Vec<String> = s.iter().map(Scope::to_string).collect();
        assert_eq!(shown, ["fhircast/Patient-close.read", "fhircast/Patient-open.read"]);
        assert!(Scopes::parse("openid launch").is_empty());
        assert!(Scopes::parse("").is_empty());
        // Strict parsing skips foreign scopes but reports malformed fhircast/ ones.
        assert_eq!(Scopes::parse_strict("openid fhircast/*.read").unwrap().to_string(), "fhircast/*.read");
        assert!(matches!(
            Scopes::parse_strict("openid fhircast/bogus"),
            Err(ScopeError::MissingAccess(s)) if s == "fhircast/bogus"
        ));
    }

    #[test]
    fn req18_scopes_allow_only_named_events() {
        let s = Scopes::parse("fhircast/Patient-open.read fhircast/Patient-open.write fhircast/Patient-close.read");
        assert!(s.allows(&n("Patient-open"), Access::Read));
        assert!(s.allows(&n("patient-OPEN"), Access::Write));
        assert!(s.allows(&n("Patient-close"), Access::Read));
        assert!(!s.allows(&n("Patient-close"), Access::Write));
        // Exact: a scope on one event says nothing about its neighbours.
        assert!(!s.allows(&n("Encounter-open"), Access::Read));
        assert!(!s.allows(&n("SyncError"), Access::Read));
        assert!(!Scopes::default().allows(&n("Patient-open"), Access::Read));
    }

    #[test]
    fn req16_req18_star_scopes_cover_every_event() {
        let all = Scopes::all();
        assert_eq!(all.to_string(), "fhircast/*.*");
        for e in ["Patient-open", "SyncError", "org.example.x", "DiagnosticReport-select"] {
            assert!(all.allows(&n(e), Access::Read) && all.allows(&n(e), Access::Write), "{e}");
        }
        let read_all = Scopes::parse("fhircast/*.read fhircast/Patient-open.write");
        assert!(read_all.allows(&n("UserLogout"), Access::Read));
        assert!(!read_all.allows(&n("UserLogout"), Access::Write));
        assert!(read_all.allows(&n("Patient-open"), Access::Write));
    }

    #[test]
    fn req17_scopes_are_merged_into_a_canonical_set() {
        let a = Scopes::parse("fhircast/Patient-open.write fhircast/*.read fhircast/patient-open.read");
        let b = Scopes::parse("fhircast/*.read fhircast/Patient-open.*");
        assert_eq!(a, b);
        assert_eq!(a.to_string(), "fhircast/*.read fhircast/Patient-open.*");
        let none = Scope { event: Some(n("Patient-open")), read: false, write: false };
        assert_eq!(none.to_string(), "fhircast/Patient-open.none");
        assert!(none.to_string().parse::<Scope>().is_err());
        assert!(Scopes::from_scopes(vec![none]).is_empty());
    }

    #[test]
    fn scopes_serialise_as_a_space_separated_string() {
        let s = Scopes::parse("fhircast/Patient-close.read fhircast/Patient-open.read");
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, r#""fhircast/Patient-close.read fhircast/Patient-open.read""#);
        assert_eq!(serde_json::from_str::<Scopes>(&json).unwrap(), s);
        assert_eq!(serde_json::to_string(&Scopes::default()).unwrap(), r#""""#);
        assert!(serde_json::from_str::<Scopes>(r#""fhircast/Patient-open""#).is_err());
    }
}
