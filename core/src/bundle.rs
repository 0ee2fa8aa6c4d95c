//! Content sharing (req 105, 107-121, neg 17-18, §5a-17): the transaction Bundle a `*-update`
//! carries, and the content an open anchor accumulates from such Bundles.
//!
//! All validation happens in [`UpdateBundle::parse`]: a Bundle with any bad entry is rejected
//! whole, before anything is applied, so [`Content::apply`] cannot fail and an update is
//! atomic by construction (req 111, neg 17). Resources stay [`RawValue`]s: only
//! `resourceType` and `id` are read, and the bytes a subscriber sent are the bytes the Hub
//! stores and hands out again.
//!
//! The spec's examples disagree with its profile (§5a-17): none of them has `request.url`
//! (1..1 in the profile) or a Bundle `id`. Neither is required here (req 112, 116); the target
//! of a PUT is its `resource`'s type and id, the target of a DELETE its `fullUrl`.

use std::collections::BTreeMap;

use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

use crate::catalog;
use crate::wire::{ContextEntry, ValueField};

/// The context key of the Bundle in a `*-update` event (req 65, §3).
pub const UPDATES_KEY: &str = "updates";
/// The context key of the content Bundle in a get-current-context answer (req 105).
pub const CONTENT_KEY: &str = "content";

pub use crate::wire::ResourceKey;

impl ResourceKey {
    /// Reads the resource a URL names: a relative `Type/id`, or an absolute URL ending in
    /// `Type/id`, optionally followed by `/_history/<v>`. `None` for `urn:` URLs (they name a
    /// Bundle entry, not a resource), conditional URLs (`Type?search`), and anything whose
    /// last two segments are not a resource type name and a FHIR id.
    pub fn from_url(url: &str) -> Option<ResourceKey> {
        let url = url.trim();
        if url.starts_with("urn:") || url.contains(['?', '#']) {
            return None;
        }
        let path = strip_history(url).trim_end_matches('/');
        let mut segments = path.rsplit('/');
        let id = segments.next()?;
        let resource_type = segments.next()?;
        (is_type_name(resource_type) && is_fhir_id(id)).then(|| ResourceKey::new(resource_type, id))
    }
}

fn strip_history(url: &str) -> &str {
    crate::before(url, "/_history/")
}

/// `[A-Z][A-Za-z0-9]*`: the shape of a FHIR resource type name. Membership in the R4 list is
/// not required (req 114: the Hub need not validate FHIR), only a shape that cannot break a
/// `Type/id` key or URL.
fn is_type_name(s: &str) -> bool {
    s.chars().next().is_some_and(|c| c.is_ascii_uppercase()) && s.chars().all(|c| c.is_ascii_alphanumeric())
}

/// The character set of the FHIR `id` datatype, `[A-Za-z0-9\-\.]`. Its 64-character limit is
/// not enforced: a longer id is harmless here, while a `/`, `?` or space would make the
/// resource impossible to name in a `fullUrl`.
fn is_fhir_id(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
}

/// One entry of an update Bundle, validated.
#[derive(Clone, Debug)]
pub enum Change {
    /// `PUT`: add the resource, or replace the one with the same key.
    Put {
        /// The resource's `Type/id`, read from the resource itself.
        key: ResourceKey,
        /// The resource, exactly as sent.
        resource: Box<RawValue>,
    },
    /// `DELETE`: remove the resource (nothing happens if it is absent).
    Delete {
        /// The target, read from `fullUrl` or `request.url`.
        key: ResourceKey,
    },
}

impl Change {
    /// The resource this change targets.
    pub fn key(&self) -> &ResourceKey {
        match self {
            Change::Put { key, .. } | Change::Delete { key } => key,
        }
    }
}

impl PartialEq for Change {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Change::Put { key: a, resource: ra }, Change::Put { key: b, resource: rb }) => {
                a == b && ra.get() == rb.get()
            }
            (Change::Delete { key: a }, Change::Delete { key: b }) => a == b,
            _ => false,
        }
    }
}

impl Eq for Change {}

/// A `*-update`'s transaction Bundle (the `updates` context entry), validated (req 116).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpdateBundle {
    /// The Bundle's `id`, kept because the broadcast must carry the same one (req 112). The
    /// spec's examples have none.
    pub id: Option<String>,
    /// The entries, in Bundle order; no two target the same resource.
    pub changes: Vec<Change>,
}

#[derive(Deserialize)]
struct BundleIn<'a> {
    #[serde(rename = "resourceType")]
    resource_type: Option<Value>,
    #[serde(rename = "type")]
    kind: Option<Value>,
    id: Option<Value>,
    #[serde(borrow)]
    link: Option<&'a RawValue>,
    #[serde(borrow)]
    entry: Option<Vec<&'a RawValue>>,
}

#[derive(Deserialize)]
struct EntryIn<'a> {
    #[serde(rename = "fullUrl")]
    full_url: Option<Value>,
    #[serde(borrow)]
    resource: Option<&'a RawValue>,
    request: Option<Value>,
    search: Option<IgnoredAny>,
    response: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct HeaderIn {
    #[serde(rename = "resourceType")]
    resource_type: Option<Value>,
    id: Option<Value>,
}

/// Whether raw JSON text is an object. Checked before a derived struct reads it, because
/// serde also accepts a JSON array for a struct, positionally.
fn is_object(json: &str) -> bool {
    json.trim_start().starts_with('{')
}

/// Reads the outer shape of a Bundle: a JSON object with resourceType `Bundle`.
fn read_bundle(json: &str) -> Result<BundleIn<'_>, BundleError> {
    if !is_object(json) {
        return Err(match serde_json::from_str::<IgnoredAny>(json) {
            Err(e) => BundleError::NotJson(e.to_string()),
            Ok(_) => BundleError::NotObject,
        });
    }
    let bundle: BundleIn<'_> =
        serde_json::from_str(json).map_err(|e| match serde_json::from_str::<IgnoredAny>(json) {
            Err(e) => BundleError::NotJson(e.to_string()),
            Ok(_) => BundleError::Malformed(e.to_string()),
        })?;
    match &bundle.resource_type {
        Some(Value::String(t)) if t == "Bundle" => Ok(bundle),
        other => Err(BundleError::NotABundle { found: describe(other.as_ref()) }),
    }
}

/// How an error message shows a JSON value that was not what it should be.
fn describe(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "absent".to_owned(),
        Some(Value::String(s)) => format!("{s:?}"),
        Some(Value::Array(_)) => "an array".to_owned(),
        Some(Value::Object(_)) => "an object".to_owned(),
        Some(other) => other.to_string(),
    }
}

/// Reads a resource's `Type/id`, or says what is wrong with it (`Err(None)`: it has no id).
fn resource_key(index: usize, raw: &RawValue) -> Result<ResourceKey, BundleError> {
    let bad = |reason: String| BundleError::BadResource { index, reason };
    if !is_object(raw.get()) {
        return Err(bad("is not a JSON object".to_owned()));
    }
    let header: HeaderIn = serde_json::from_str(raw.get()).map_err(|e| bad(e.to_string()))?;
    let resource_type = match header.resource_type {
        Some(Value::String(t)) if is_type_name(&t) => t,
        None | Some(Value::Null) => return Err(bad("has no resourceType".to_owned())),
        other => {
            return Err(bad(format!(
                "has resourceType {}, which is not a resource type name",
                describe(other.as_ref())
            )))
        }
    };
    let id = match header.id {
        Some(Value::String(id)) if is_fhir_id(&id) => id,
        None | Some(Value::Null) => return Err(BundleError::PutWithoutId { index, resource_type }),
        other => {
            return Err(bad(format!(
                "{resource_type} has id {}, which is not a FHIR id (letters, digits, '-' and '.')",
                describe(other.as_ref())
            )))
        }
    };
    Ok(ResourceKey { resource_type, id })
}

/// An optional string element of an entry.
fn opt_str(index: usize, element: &'static str, v: Option<&Value>) -> Result<Option<String>, BundleError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim().to_owned())),
        Some(_) => Err(BundleError::MalformedEntry { index, detail: format!("{element} is not a string") }),
    }
}

/// Checks that a URL next to a known target does not name a *different* resource (req 116).
///
/// Accepted: no URL, a `urn:`, the target's `Type/id` (relative or absolute), the target's
/// `Type` alone (a FHIR create-or-update URL). Also accepted: a URL that names no resource at
/// all, such as the base URL `http://example.com/huburl/topic/fhir` in the spec's own
/// `FHIRcastContentUpdateBundle-Example` instance: it cannot contradict the target. Rejected:
/// a conditional URL (`?`), and one whose last segments name another resource type or id.
fn check_url(index: usize, element: &'static str, url: Option<&str>, key: &ResourceKey) -> Result<(), BundleError> {
    let Some(url) = url else { return Ok(()) };
    if url.contains('?') {
        return Err(BundleError::ConditionalUrl { index, element, url: url.to_owned() });
    }
    if url.is_empty() || url.starts_with("urn:") || ResourceKey::from_url(url).as_ref() == Some(key) {
        return Ok(());
    }
    let mut segments = strip_history(url).trim_end_matches('/').rsplit('/');
    let last = segments.next().unwrap_or_default();
    if last == key.resource_type {
        return Ok(());
    }
    let known = |s: &str| catalog::resource_type(s) == Some(s);
    if known(last) || segments.next().is_some_and(known) {
        return Err(BundleError::TargetMismatch { index, element, url: url.to_owned(), target: key.clone() });
    }
    Ok(())
}

fn parse_entry(index: usize, raw: &RawValue) -> Result<Change, BundleError> {
    if !is_object(raw.get()) {
        return Err(BundleError::EntryNotObject { index });
    }
    let entry: EntryIn<'_> =
        serde_json::from_str(raw.get()).map_err(|e| BundleError::MalformedEntry { index, detail: e.to_string() })?;
    if entry.search.is_some() {
        return Err(BundleError::SearchOrResponse { index, element: "search" });
    }
    if entry.response.is_some() {
        return Err(BundleError::SearchOrResponse { index, element: "response" });
    }
    let request = match &entry.request {
        Some(Value::Object(r)) => r,
        _ => return Err(BundleError::MissingMethod { index }),
    };
    let method = match request.get("method") {
        Some(Value::String(m)) => m.as_str(),
        _ => return Err(BundleError::MissingMethod { index }),
    };
    let url = opt_str(index, "request.url", request.get("url"))?;
    let full_url = opt_str(index, "fullUrl", entry.full_url.as_ref())?;
    match method {
        "PUT" => {
            let resource = entry.resource.ok_or(BundleError::PutWithoutResource { index })?;
            let key = resource_key(index, resource)?;
            check_url(index, "request.url", url.as_deref(), &key)?;
            check_url(index, "fullUrl", full_url.as_deref(), &key)?;
            Ok(Change::Put { key, resource: resource.to_owned() })
        }
        "DELETE" => {
            if entry.resource.is_some() {
                return Err(BundleError::DeleteWithResource { index });
            }
            for (element, u) in [("fullUrl", &full_url), ("request.url", &url)] {
                if let Some(u) = u.as_deref().filter(|u| u.contains('?')) {
                    return Err(BundleError::ConditionalUrl { index, element, url: u.to_owned() });
                }
            }
            // fullUrl names the target (req 116); request.url stands in when fullUrl is a urn
            // or absent (§5a-17), and must agree with it when both are given.
            let key = match (full_url.as_deref().and_then(ResourceKey::from_url), url.as_deref()) {
                (Some(key), url) => {
                    check_url(index, "request.url", url, &key)?;
                    key
                }
                (None, Some(url)) => ResourceKey::from_url(url).ok_or(BundleError::DeleteWithoutTarget { index })?,
                (None, None) => return Err(BundleError::DeleteWithoutTarget { index }),
            };
            Ok(Change::Delete { key })
        }
        "POST" => Err(BundleError::PostNotAllowed { index }),
        other => Err(BundleError::UnsupportedMethod { index, method: other.to_owned() }),
    }
}

impl UpdateBundle {
    /// Parses and validates an update Bundle (req 116, neg 17-18). Any violation rejects the
    /// whole Bundle; nothing is ever half-accepted (req 111).
    ///
    /// `max_entries` is the most entries the caller will take; more is
    /// [`BundleError::TooManyEntries`], answered with `413` (req 96, neg 18). It is checked
    /// before any entry is looked at.
    pub fn parse(json: &str, max_entries: usize) -> Result<UpdateBundle, BundleError> {
        let bundle = read_bundle(json)?;
        match &bundle.kind {
            Some(Value::String(t)) if t == "transaction" => {}
            other => return Err(BundleError::NotTransaction { found: describe(other.as_ref()) }),
        }
        if let Some(link) = bundle.link {
            let empty = serde_json::from_str::<Vec<IgnoredAny>>(link.get()).is_ok_and(|v| v.is_empty());
            if !empty {
                return Err(BundleError::HasLink);
            }
        }
        let id = match bundle.id {
            None | Some(Value::Null) => None,
            Some(Value::String(id)) if !id.is_empty() => Some(id),
            Some(_) => return Err(BundleError::BadId),
        };
        let entries = bundle.entry.unwrap_or_default();
        if entries.len() > max_entries {
            return Err(BundleError::TooManyEntries { count: entries.len(), max: max_entries });
        }
        let mut seen = BTreeMap::<ResourceKey, usize>::new();
        let mut changes = Vec::with_capacity(entries.len());
        for (index, raw) in entries.into_iter().enumerate() {
            let change = parse_entry(index, raw)?;
            if let Some(&first) = seen.get(change.key()) {
                return Err(BundleError::Duplicate { key: change.key().clone(), first, second: index });
            }
            seen.insert(change.key().clone(), index);
            changes.push(change);
        }
        Ok(UpdateBundle { id, changes })
    }

    /// Finds and parses the one `updates` Bundle of a `*-update` event's context (neg 17:
    /// "more or fewer than one Bundle" is a bad update).
    pub fn from_context(context: &[ContextEntry], max_entries: usize) -> Result<UpdateBundle, BundleError> {
        let mut found = context.iter().filter(|e| e.key == UPDATES_KEY);
        let entry = found.next().ok_or(BundleError::MissingUpdates)?;
        let more = found.count();
        if more > 0 {
            return Err(BundleError::SeveralUpdates { count: more + 1 });
        }
        if entry.field != ValueField::Resource {
            return Err(BundleError::UpdatesNotResource { field: entry.field.to_string() });
        }
        UpdateBundle::parse(entry.value.get(), max_entries)
    }
}

/// Why an update Bundle (or a content Bundle) was rejected.
///
/// Every variant rejects the whole request (req 111, neg 17). [`BundleError::http_status`]
/// gives the status a Hub answers with, [`BundleError::spec_ref`] the items the message cites.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// The text is not JSON.
    #[error("the Bundle is not valid JSON: {0} (neg 12, neg 17)")]
    NotJson(String),
    /// The JSON is not an object.
    #[error("the Bundle is not a JSON object (req 116, neg 17)")]
    NotObject,
    /// An element of the Bundle has the wrong JSON type (e.g. `entry` is not an array), or an
    /// element is repeated.
    #[error("the Bundle is malformed: {0} (req 116, neg 17)")]
    Malformed(String),
    /// The resource is not a Bundle.
    #[error("the resource's resourceType is {found}; it must be \"Bundle\" (req 116, neg 17)")]
    NotABundle {
        /// The resourceType found, quoted, or `absent`.
        found: String,
    },
    /// The Bundle's type is not `transaction`.
    #[error("the update Bundle's type is {found}; it must be \"transaction\" (req 116, neg 17)")]
    NotTransaction {
        /// The type found, quoted, or `absent`.
        found: String,
    },
    /// A content Bundle's type is not `collection`.
    #[error("the content Bundle's type is {found}; it must be \"collection\" (req 105)")]
    NotCollection {
        /// The type found, quoted, or `absent`.
        found: String,
    },
    /// The Bundle has a `link`.
    #[error("the update Bundle has a \"link\"; the content update profile forbids it (link 0..0, req 116)")]
    HasLink,
    /// The Bundle's `id` is not a non-empty string.
    #[error("the update Bundle's \"id\" must be a non-empty string; it is echoed in the broadcast (req 112)")]
    BadId,
    /// More entries than the recipient accepts.
    #[error("the update Bundle has {count} entries, more than the {max} accepted: answer 413, or 202 and a SyncError with issue.code \"too-long\" (req 96, neg 18)")]
    TooManyEntries {
        /// Entries in the Bundle.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// An entry is not a JSON object.
    #[error("entry[{index}] of the Bundle is not a JSON object (req 116, neg 17)")]
    EntryNotObject {
        /// The entry's 0-based position.
        index: usize,
    },
    /// An entry element has the wrong JSON type, or is repeated.
    #[error("entry[{index}] of the Bundle is malformed: {detail} (req 116, neg 17)")]
    MalformedEntry {
        /// The entry's 0-based position.
        index: usize,
        /// What is wrong.
        detail: String,
    },
    /// An entry has no `request.method`.
    #[error("entry[{index}] has no request.method; each entry must be a PUT or a DELETE (req 116, neg 17)")]
    MissingMethod {
        /// The entry's 0-based position.
        index: usize,
    },
    /// A `POST` entry.
    #[error("entry[{index}] is a POST; only PUT and DELETE are allowed, because a POST cannot name the id of the resource it creates (req 116, neg 17)")]
    PostNotAllowed {
        /// The entry's 0-based position.
        index: usize,
    },
    /// A method other than PUT, DELETE or POST.
    #[error("entry[{index}] has request.method {method:?}; only \"PUT\" and \"DELETE\" are allowed, and FHIR codes are case-sensitive (req 116, neg 17)")]
    UnsupportedMethod {
        /// The entry's 0-based position.
        index: usize,
        /// The method found.
        method: String,
    },
    /// An entry carries `search` or `response`.
    #[error(
        "entry[{index}] has a {element:?} element; update entries carry neither search nor response (req 116, neg 17)"
    )]
    SearchOrResponse {
        /// The entry's 0-based position.
        index: usize,
        /// `search` or `response`.
        element: &'static str,
    },
    /// A PUT without `resource`.
    #[error("entry[{index}] is a PUT without a resource; a PUT carries the whole new resource (req 116, neg 17)")]
    PutWithoutResource {
        /// The entry's 0-based position.
        index: usize,
    },
    /// A PUT whose resource has no `id`.
    #[error("entry[{index}] is a PUT of {} without an id; the id names the resource to add or replace (req 114, 116, neg 17)", crate::A(.resource_type))]
    PutWithoutId {
        /// The entry's 0-based position.
        index: usize,
        /// The resource's type.
        resource_type: String,
    },
    /// A resource that is not an object, or has an unusable resourceType or id.
    #[error("entry[{index}]'s resource {reason} (req 114, 116, neg 17)")]
    BadResource {
        /// The entry's 0-based position.
        index: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// `fullUrl` or `request.url` names another resource than the entry's target.
    #[error("entry[{index}]'s {element} {url:?} names another resource than its target {target} (req 116, neg 17)")]
    TargetMismatch {
        /// The entry's 0-based position.
        index: usize,
        /// `fullUrl` or `request.url`.
        element: &'static str,
        /// The URL.
        url: String,
        /// The target the entry's other elements name.
        target: ResourceKey,
    },
    /// A conditional URL (`Type?search`), which a Hub cannot resolve.
    #[error("entry[{index}]'s {element} {url:?} is conditional; content sharing names each resource as Type/id (req 116, neg 17)")]
    ConditionalUrl {
        /// The entry's 0-based position.
        index: usize,
        /// `fullUrl` or `request.url`.
        element: &'static str,
        /// The URL.
        url: String,
    },
    /// A DELETE that names no target.
    #[error("entry[{index}] is a DELETE with no target: give fullUrl as \"Type/id\" (or an absolute URL ending in Type/id), or request.url when fullUrl is a urn (req 116, neg 17, §5a-17)")]
    DeleteWithoutTarget {
        /// The entry's 0-based position.
        index: usize,
    },
    /// A DELETE that carries a resource.
    #[error("entry[{index}] is a DELETE with a resource; a DELETE names its target by fullUrl and carries no resource (req 116, neg 17)")]
    DeleteWithResource {
        /// The entry's 0-based position.
        index: usize,
    },
    /// Two entries target the same resource.
    #[error("{key} appears in entry[{first}] and entry[{second}]; a resource SHALL NOT appear twice in one Bundle (req 116, neg 17)")]
    Duplicate {
        /// The resource.
        key: ResourceKey,
        /// The first entry's 0-based position.
        first: usize,
        /// The second entry's 0-based position.
        second: usize,
    },
    /// The event's context has no `updates` entry.
    #[error("the update event's context has no \"updates\" Bundle; exactly one is required (req 116, neg 17)")]
    MissingUpdates,
    /// The event's context has several `updates` entries.
    #[error("the update event's context has {count} \"updates\" Bundles; exactly one is allowed (req 116, neg 17)")]
    SeveralUpdates {
        /// How many.
        count: usize,
    },
    /// The `updates` entry is not a full resource.
    #[error(
        "the \"updates\" context entry uses the value field {field:?}; it must be \"resource\" (req 62, 116, neg 17)"
    )]
    UpdatesNotResource {
        /// The value field used.
        field: String,
    },
}

impl BundleError {
    /// The HTTP status a Hub answers with: `413` for too many entries (neg 18), else `400`.
    pub fn http_status(&self) -> u16 {
        match self {
            BundleError::TooManyEntries { .. } => 413,
            _ => 400,
        }
    }

    /// The requirement items this error enforces, as cited at the end of its message.
    pub fn spec_ref(&self) -> &'static str {
        use BundleError::*;
        match self {
            NotJson(_) => "neg 12, neg 17",
            NotCollection { .. } => "req 105",
            HasLink => "link 0..0, req 116",
            BadId => "req 112",
            TooManyEntries { .. } => "req 96, neg 18",
            PutWithoutId { .. } | BadResource { .. } => "req 114, 116, neg 17",
            DeleteWithoutTarget { .. } => "req 116, neg 17, §5a-17",
            UpdatesNotResource { .. } => "req 62, 116, neg 17",
            NotObject
            | Malformed(_)
            | NotABundle { .. }
            | NotTransaction { .. }
            | EntryNotObject { .. }
            | MalformedEntry { .. }
            | MissingMethod { .. }
            | PostNotAllowed { .. }
            | UnsupportedMethod { .. }
            | SearchOrResponse { .. }
            | PutWithoutResource { .. }
            | TargetMismatch { .. }
            | ConditionalUrl { .. }
            | DeleteWithResource { .. }
            | Duplicate { .. }
            | MissingUpdates
            | SeveralUpdates { .. } => "req 116, neg 17",
        }
    }
}

/// The content of one open anchor: every resource added by updates and not deleted since
/// (req 108-113, 125).
///
/// Keyed by `"Type/id"` strings, so it serialises as a plain JSON object a shell can persist
/// (e.g. in Durable Object storage) and read back; iteration, and so every Bundle built from
/// it, is in key order, which makes output deterministic.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Content {
    resources: BTreeMap<String, Box<RawValue>>,
}

impl PartialEq for Content {
    fn eq(&self, other: &Self) -> bool {
        self.resources.len() == other.resources.len()
            && self.resources.iter().zip(&other.resources).all(|((ka, va), (kb, vb))| ka == kb && va.get() == vb.get())
    }
}

impl Eq for Content {}

#[derive(Serialize)]
struct CollectionOut<'a> {
    #[serde(rename = "resourceType")]
    resource_type: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    entry: Vec<CollectionEntryOut<'a>>,
}

#[derive(Serialize)]
struct CollectionEntryOut<'a> {
    resource: &'a RawValue,
}

impl Content {
    /// Applies a validated update: each PUT adds or replaces, each DELETE removes (a missing
    /// resource is no error). [`UpdateBundle::parse`] did all the checking, so this cannot
    /// fail and never leaves a half-applied update (req 111).
    pub fn apply(&mut self, bundle: &UpdateBundle) {
        for change in &bundle.changes {
            match change {
                Change::Put { key, resource } => {
                    self.resources.insert(key.to_string(), resource.clone());
                }
                Change::Delete { key } => {
                    self.resources.remove(&key.to_string());
                }
            }
        }
    }

    /// How many resources there are.
    pub fn len(&self) -> usize {
        self.resources.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.resources.is_empty()
    }

    /// The resource with this key, as it was last PUT.
    pub fn get(&self, key: &ResourceKey) -> Option<&RawValue> {
        self.resources.get(&key.to_string()).map(|r| &**r)
    }

    /// The resources in key order.
    pub fn iter(&self) -> impl Iterator<Item = (ResourceKey, &RawValue)> + '_ {
        self.resources.iter().map(|(k, v)| {
            let (t, id) = k.split_once('/').unwrap_or((k, ""));
            (ResourceKey::new(t, id), &**v)
        })
    }

    /// The content as a get-current-context Bundle (req 105): type `collection`, one entry
    /// `{"resource": ...}` per resource in key order, no `request`.
    ///
    /// With no content the Bundle has zero entries, written by leaving `entry` out, since
    /// FHIR JSON does not allow empty arrays. Entries have no `fullUrl` (0..1 in the profile),
    /// as in the spec's own example: the Hub has no server base it could honestly put there,
    /// and each resource names itself.
    pub fn collection_bundle_json(&self) -> String {
        let bundle = CollectionOut {
            resource_type: "Bundle",
            kind: "collection",
            entry: self.resources.values().map(|r| CollectionEntryOut { resource: r }).collect(),
        };
        serde_json::to_string(&bundle).unwrap_or_else(|_| unreachable!("a Bundle of raw JSON values serialises"))
    }

    /// The `content` context entry of a get-current-context answer (req 105).
    pub fn context_entry(&self) -> ContextEntry {
        ContextEntry {
            key: CONTENT_KEY.to_owned(),
            field: ValueField::Resource,
            value: RawValue::from_string(self.collection_bundle_json())
                .unwrap_or_else(|_| unreachable!("serde_json output is valid JSON")),
        }
    }

    /// Reads a content Bundle back (req 105): what a subscriber does with a get-current-context
    /// answer to resynchronise after a failed update (req 117). Every entry's resource needs a
    /// type and id, and none may appear twice; entries without a resource are skipped.
    pub fn from_collection_bundle(json: &str) -> Result<Content, BundleError> {
        #[derive(Deserialize)]
        struct CollectionEntryIn<'a> {
            #[serde(borrow)]
            resource: Option<&'a RawValue>,
        }
        let bundle = read_bundle(json)?;
        match &bundle.kind {
            Some(Value::String(t)) if t == "collection" => {}
            other => return Err(BundleError::NotCollection { found: describe(other.as_ref()) }),
        }
        let mut content = Content::default();
        let mut seen = BTreeMap::<ResourceKey, usize>::new();
        for (index, raw) in bundle.entry.unwrap_or_default().into_iter().enumerate() {
            if !is_object(raw.get()) {
                return Err(BundleError::EntryNotObject { index });
            }
            let entry: CollectionEntryIn<'_> = serde_json::from_str(raw.get())
                .map_err(|e| BundleError::MalformedEntry { index, detail: e.to_string() })?;
            let Some(resource) = entry.resource else {
                continue;
            };
            let key = resource_key(index, resource)?;
            if let Some(&first) = seen.get(&key) {
                return Err(BundleError::Duplicate { key, first, second: index });
            }
            content.resources.insert(key.to_string(), resource.to_owned());
            seen.insert(key, index);
        }
        Ok(content)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 100;

    fn bundle(entries: &[&str]) -> String {
        format!(r#"{{"resourceType":"Bundle","type":"transaction","entry":[{}]}}"#, entries.join(","))
    }
    fn put(t: &str, id: &str) -> String {
        format!(r#"{{"request":{{"method":"PUT"}},"resource":{{"resourceType":"{t}","id":"{id}","status":"final"}}}}"#)
    }
    fn delete(full_url: &str) -> String {
        format!(r#"{{"fullUrl":"{full_url}","request":{{"method":"DELETE"}}}}"#)
    }
    fn parse(entries: &[&str]) -> Result<UpdateBundle, BundleError> {
        UpdateBundle::parse(&bundle(entries), MAX)
    }
    fn key(t: &str, id: &str) -> ResourceKey {
        ResourceKey::new(t, id)
    }

    #[test]
    fn req116_put_and_delete_without_request_url() {
        let b = parse(&[&put("Observation", "o1"), &delete("Observation/o2")]).unwrap();
        assert_eq!(b.id, None);
        assert_eq!(b.changes.len(), 2);
        assert!(matches!(&b.changes[0], Change::Put { key: k, resource } if *k == key("Observation", "o1")
            && resource.get() == r#"{"resourceType":"Observation","id":"o1","status":"final"}"#));
        assert_eq!(b.changes[1], Change::Delete { key: key("Observation", "o2") });
    }

    #[test]
    fn req112_bundle_id_kept() {
        let json = r#"{"resourceType":"Bundle","id":"b-7","type":"transaction","entry":[]}"#;
        assert_eq!(UpdateBundle::parse(json, MAX).unwrap().id.as_deref(), Some("b-7"));
        let bad = r#"{"resourceType":"Bundle","id":7,"type":"transaction"}"#;
        assert_eq!(UpdateBundle::parse(bad, MAX), Err(BundleError::BadId));
    }

    #[test]
    fn req116_request_url_when_present_must_name_the_target() {
        let with_url = |url: &str| {
            let e = format!(
                r#"{{"request":{{"method":"PUT","url":"{url}"}},"resource":{{"resourceType":"Observation","id":"o1"}}}}"#
            );
            parse(&[&e])
        };
        for ok in [
            "Observation/o1",
            "Observation",
            "http://x/fhir/Observation/o1",
            "http://x/fhir/Observation",
            "Observation/o1/_history/2",
            // The spec's FHIRcastContentUpdateBundle-Example uses the Hub's base URL: it names
            // no resource, so it cannot contradict the target.
            "http://example.com/huburl/topic/fhir",
        ] {
            assert!(with_url(ok).is_ok(), "{ok}");
        }
        for bad in ["Observation/o2", "Patient/o1", "Patient", "http://x/fhir/Observation/o2"] {
            let err = with_url(bad).unwrap_err();
            assert!(
                matches!(err, BundleError::TargetMismatch { index: 0, element: "request.url", .. }),
                "{bad}: {err}"
            );
            assert!(err.to_string().contains("Observation/o1"), "{err}");
        }
        assert!(matches!(with_url("Observation?identifier=x"), Err(BundleError::ConditionalUrl { .. })));
    }

    #[test]
    fn req116_fsh_profile_example_accepted() {
        // FHIRcastContentUpdateBundle-Example from the spec's FSH, rendered: `urn:` fullUrls and
        // the Hub's base URL as request.url, which name no resource, so the resources decide.
        let json = r#"{"resourceType":"Bundle","type":"transaction","entry":[
            {"fullUrl":"urn:7e9deb91-0017-4690-aebd-951cef34aba4",
             "request":{"method":"PUT","url":"http://example.com/huburl/topic/fhir"},
             "resource":{"resourceType":"ImagingStudy","id":"7e9deb91-0017-4690-aebd-951cef34aba4","status":"available"}},
            {"fullUrl":"urn:40afe766-3628-4ded-b5bd-925727c013b3",
             "request":{"url":"http://example.com/huburl/topic/fhir","method":"PUT"},
             "resource":{"resourceType":"Observation","id":"40afe766-3628-4ded-b5bd-925727c013b3","status":"preliminary"}}]}"#;
        let keys: Vec<_> =
            UpdateBundle::parse(json, MAX).unwrap().changes.iter().map(|c| c.key().to_string()).collect();
        assert_eq!(
            keys,
            ["ImagingStudy/7e9deb91-0017-4690-aebd-951cef34aba4", "Observation/40afe766-3628-4ded-b5bd-925727c013b3"]
        );
    }

    #[test]
    fn req116_put_full_url_must_not_contradict_the_resource() {
        let e = |full: &str| {
            format!(
                r#"{{"fullUrl":"{full}","request":{{"method":"PUT"}},"resource":{{"resourceType":"Observation","id":"o1"}}}}"#
            )
        };
        assert!(parse(&[&e("urn:uuid:8f0c")]).is_ok());
        assert!(parse(&[&e("urn:40afe766")]).is_ok(), "the FSH example's urn: form");
        assert!(parse(&[&e("http://x/Observation/o1")]).is_ok());
        assert!(matches!(parse(&[&e("Observation/zz")]), Err(BundleError::TargetMismatch { element: "fullUrl", .. })));
    }

    #[test]
    fn neg17_not_transaction_rejects_whole_bundle() {
        for (ty, found) in [(r#""batch""#, r#""batch""#), (r#""collection""#, r#""collection""#), ("3", "3")] {
            let json = format!(r#"{{"resourceType":"Bundle","type":{ty},"entry":[{}]}}"#, put("Observation", "o1"));
            let err = UpdateBundle::parse(&json, MAX).unwrap_err();
            assert_eq!(err, BundleError::NotTransaction { found: found.into() });
            assert!(err.to_string().ends_with("(req 116, neg 17)"));
        }
        let no_type = r#"{"resourceType":"Bundle"}"#;
        assert_eq!(UpdateBundle::parse(no_type, MAX), Err(BundleError::NotTransaction { found: "absent".into() }));
    }

    #[test]
    fn neg17_not_a_bundle_or_not_json() {
        let err = |j: &str| UpdateBundle::parse(j, MAX).unwrap_err();
        assert!(matches!(err("{"), BundleError::NotJson(_)));
        assert!(matches!(err("not json"), BundleError::NotJson(_)));
        assert_eq!(err("[]"), BundleError::NotObject);
        assert_eq!(err(r#""Bundle""#), BundleError::NotObject);
        assert_eq!(
            err(r#"{"resourceType":"Patient","type":"transaction"}"#),
            BundleError::NotABundle { found: r#""Patient""#.into() }
        );
        assert_eq!(err(r#"{"type":"transaction"}"#), BundleError::NotABundle { found: "absent".into() });
        assert!(matches!(
            err(r#"{"resourceType":"Bundle","type":"transaction","entry":{}}"#),
            BundleError::Malformed(_)
        ));
        assert!(matches!(
            err(r#"{"resourceType":"Bundle","type":"transaction","entry":[],"entry":[]}"#),
            BundleError::Malformed(_)
        ));
    }

    #[test]
    fn neg17_post_entry_rejects_whole_bundle() {
        let post =
            r#"{"request":{"method":"POST","url":"Observation"},"resource":{"resourceType":"Observation","id":"o9"}}"#;
        let err = parse(&[&put("Observation", "o1"), post]).unwrap_err();
        assert_eq!(err, BundleError::PostNotAllowed { index: 1 });
        assert_eq!(err.http_status(), 400);
        assert!(err.to_string().contains("POST"));
    }

    #[test]
    fn neg17_other_methods_and_missing_method_rejected() {
        for m in ["GET", "PATCH", "HEAD", "put", "delete"] {
            let e =
                format!(r#"{{"request":{{"method":"{m}"}},"resource":{{"resourceType":"Observation","id":"o1"}}}}"#);
            assert_eq!(parse(&[&e]), Err(BundleError::UnsupportedMethod { index: 0, method: m.into() }), "{m}");
        }
        let no_request = r#"{"resource":{"resourceType":"Observation","id":"o1"}}"#;
        assert_eq!(parse(&[no_request]), Err(BundleError::MissingMethod { index: 0 }));
        let no_method = r#"{"request":{"url":"Observation/o1"},"resource":{"resourceType":"Observation","id":"o1"}}"#;
        assert_eq!(parse(&[no_method]), Err(BundleError::MissingMethod { index: 0 }));
        assert_eq!(parse(&[r#"{"request":{"method":1}}"#]), Err(BundleError::MissingMethod { index: 0 }));
    }

    #[test]
    fn neg17_same_resource_twice_rejected_and_named() {
        let err = parse(&[&put("Observation", "o1"), &put("Patient", "p"), &delete("Observation/o1")]).unwrap_err();
        assert_eq!(err, BundleError::Duplicate { key: key("Observation", "o1"), first: 0, second: 2 });
        assert!(err.to_string().starts_with("Observation/o1 appears in entry[0] and entry[2]"), "{err}");
        let err = parse(&[&put("Observation", "o1"), &put("Observation", "o1")]).unwrap_err();
        assert!(matches!(err, BundleError::Duplicate { .. }));
    }

    #[test]
    fn neg17_delete_without_full_url_or_any_target_rejected() {
        let bare = r#"{"request":{"method":"DELETE"}}"#;
        let err = parse(&[bare]).unwrap_err();
        assert_eq!(err, BundleError::DeleteWithoutTarget { index: 0 });
        assert!(err.to_string().contains("neg 17"));
        // A urn fullUrl names an entry, not a resource; with no request.url there is no target.
        assert_eq!(parse(&[&delete("urn:uuid:1234")]), Err(BundleError::DeleteWithoutTarget { index: 0 }));
        assert_eq!(parse(&[&delete("not-a-url")]), Err(BundleError::DeleteWithoutTarget { index: 0 }));
        let urn_and_bad_url = r#"{"fullUrl":"urn:uuid:1","request":{"method":"DELETE","url":"Observation"}}"#;
        assert_eq!(parse(&[urn_and_bad_url]), Err(BundleError::DeleteWithoutTarget { index: 0 }));
    }

    #[test]
    fn req116_delete_target_forms() {
        let target = |entry: &str| parse(&[entry]).map(|b| b.changes[0].key().clone());
        let o1 = Ok(key("Observation", "o1"));
        assert_eq!(target(&delete("Observation/o1")), o1);
        assert_eq!(target(&delete("https://hub.example/fhir/Observation/o1")), o1);
        assert_eq!(target(&delete("Observation/o1/_history/3")), o1);
        assert_eq!(target(r#"{"fullUrl":"urn:uuid:1","request":{"method":"DELETE","url":"Observation/o1"}}"#), o1);
        assert_eq!(target(r#"{"request":{"method":"DELETE","url":"Observation/o1"}}"#), o1);
        assert_eq!(target(r#"{"fullUrl":"Observation/o1","request":{"method":"DELETE","url":"Observation/o1"}}"#), o1);
        assert!(matches!(
            target(r#"{"fullUrl":"Observation/o1","request":{"method":"DELETE","url":"Observation/o2"}}"#),
            Err(BundleError::TargetMismatch { element: "request.url", .. })
        ));
        assert!(matches!(
            target(r#"{"request":{"method":"DELETE","url":"Observation?code=x"}}"#),
            Err(BundleError::ConditionalUrl { element: "request.url", .. })
        ));
    }

    #[test]
    fn neg17_put_without_resource_rejected() {
        let e = r#"{"fullUrl":"Observation/o1","request":{"method":"PUT","url":"Observation/o1"}}"#;
        assert_eq!(parse(&[&put("Patient", "p"), e]), Err(BundleError::PutWithoutResource { index: 1 }));
        let null = r#"{"request":{"method":"PUT"},"resource":null}"#;
        assert_eq!(parse(&[null]), Err(BundleError::PutWithoutResource { index: 0 }));
    }

    #[test]
    fn neg17_put_resource_needs_type_and_id() {
        let with = |r: &str| parse(&[&format!(r#"{{"request":{{"method":"PUT"}},"resource":{r}}}"#)]);
        assert_eq!(
            with(r#"{"resourceType":"Observation"}"#),
            Err(BundleError::PutWithoutId { index: 0, resource_type: "Observation".into() })
        );
        for bad in [
            r#"{"id":"o1"}"#,
            r#"{"resourceType":"observation","id":"o1"}"#,
            r#"{"resourceType":"Observation","id":"a/b"}"#,
            r#"{"resourceType":"Observation","id":""}"#,
            r#"{"resourceType":"Observation","id":5}"#,
            r#"["Observation","o1"]"#,
            r#""Observation/o1""#,
        ] {
            assert!(matches!(with(bad), Err(BundleError::BadResource { index: 0, .. })), "{bad}: {:?}", with(bad));
        }
    }

    #[test]
    fn neg17_delete_with_resource_rejected() {
        let e = r#"{"fullUrl":"Observation/o1","request":{"method":"DELETE"},"resource":{"resourceType":"Observation","id":"o1"}}"#;
        assert_eq!(parse(&[e]), Err(BundleError::DeleteWithResource { index: 0 }));
    }

    #[test]
    fn req116_no_search_response_or_link() {
        let s = r#"{"request":{"method":"DELETE"},"fullUrl":"Observation/o1","search":{"mode":"match"}}"#;
        assert_eq!(parse(&[s]), Err(BundleError::SearchOrResponse { index: 0, element: "search" }));
        let r = r#"{"request":{"method":"DELETE"},"fullUrl":"Observation/o1","response":{"status":"200"}}"#;
        assert_eq!(parse(&[r]), Err(BundleError::SearchOrResponse { index: 0, element: "response" }));
        let linked = r#"{"resourceType":"Bundle","type":"transaction","link":[{"relation":"self","url":"x"}]}"#;
        assert_eq!(UpdateBundle::parse(linked, MAX), Err(BundleError::HasLink));
        let empty_link = r#"{"resourceType":"Bundle","type":"transaction","link":[]}"#;
        assert!(UpdateBundle::parse(empty_link, MAX).is_ok(), "an empty link array says nothing");
    }

    #[test]
    fn neg17_entry_not_an_object_rejected() {
        assert_eq!(parse(&[&put("Patient", "p"), "[1]"]), Err(BundleError::EntryNotObject { index: 1 }));
        assert!(matches!(
            parse(&[r#"{"request":{"method":"PUT","url":7},"resource":{"resourceType":"A","id":"1"}}"#]),
            Err(BundleError::MalformedEntry { index: 0, .. })
        ));
    }

    #[test]
    fn neg17_more_or_fewer_than_one_updates_bundle() {
        let entry = |key: &str| ContextEntry::resource_raw(key, &bundle(&[&put("Observation", "o1")])).unwrap();
        let report = ContextEntry::reference("report", "DiagnosticReport", "r1");
        assert_eq!(UpdateBundle::from_context(std::slice::from_ref(&report), MAX), Err(BundleError::MissingUpdates));
        assert_eq!(
            UpdateBundle::from_context(&[report.clone(), entry("updates"), entry("updates")], MAX),
            Err(BundleError::SeveralUpdates { count: 2 })
        );
        assert_eq!(UpdateBundle::from_context(&[report.clone(), entry("updates")], MAX).unwrap().changes.len(), 1);
        let as_reference = ContextEntry::reference("updates", "Bundle", "b1");
        assert!(matches!(
            UpdateBundle::from_context(&[as_reference], MAX),
            Err(BundleError::UpdatesNotResource { .. })
        ));
    }

    #[test]
    fn neg18_too_many_entries_is_413() {
        let entries: Vec<String> = (0..5).map(|i| put("Observation", &format!("o{i}"))).collect();
        let refs: Vec<&str> = entries.iter().map(String::as_str).collect();
        let json = bundle(&refs);
        assert_eq!(UpdateBundle::parse(&json, 5).unwrap().changes.len(), 5);
        let err = UpdateBundle::parse(&json, 4).unwrap_err();
        assert_eq!(err, BundleError::TooManyEntries { count: 5, max: 4 });
        assert_eq!(err.http_status(), 413);
        assert_eq!(err.spec_ref(), "req 96, neg 18");
        assert!(err.to_string().contains("too-long"));
        // The count is checked before the entries, so even a broken entry reports 413.
        assert_eq!(UpdateBundle::parse(&bundle(&["1", "2"]), 1).unwrap_err().http_status(), 413);
    }

    #[test]
    fn error_messages_end_with_their_spec_ref() {
        let errors = [
            BundleError::NotJson("x".into()),
            BundleError::NotObject,
            BundleError::Malformed("x".into()),
            BundleError::NotABundle { found: "x".into() },
            BundleError::NotTransaction { found: "x".into() },
            BundleError::NotCollection { found: "x".into() },
            BundleError::HasLink,
            BundleError::BadId,
            BundleError::TooManyEntries { count: 2, max: 1 },
            BundleError::EntryNotObject { index: 0 },
            BundleError::MalformedEntry { index: 0, detail: "x".into() },
            BundleError::MissingMethod { index: 0 },
            BundleError::PostNotAllowed { index: 0 },
            BundleError::UnsupportedMethod { index: 0, method: "GET".into() },
            BundleError::SearchOrResponse { index: 0, element: "search" },
            BundleError::PutWithoutResource { index: 0 },
            BundleError::PutWithoutId { index: 0, resource_type: "A".into() },
            BundleError::BadResource { index: 0, reason: "x".into() },
            BundleError::TargetMismatch { index: 0, element: "fullUrl", url: "x".into(), target: key("A", "1") },
            BundleError::ConditionalUrl { index: 0, element: "fullUrl", url: "x".into() },
            BundleError::DeleteWithoutTarget { index: 0 },
            BundleError::DeleteWithResource { index: 0 },
            BundleError::Duplicate { key: key("A", "1"), first: 0, second: 1 },
            BundleError::MissingUpdates,
            BundleError::SeveralUpdates { count: 2 },
            BundleError::UpdatesNotResource { field: "reference".into() },
        ];
        for e in errors {
            assert!(e.to_string().ends_with(&format!("({})", e.spec_ref())), "{e}");
            assert_eq!(e.http_status(), if matches!(e, BundleError::TooManyEntries { .. }) { 413 } else { 400 });
        }
    }

    #[test]
    fn req111_apply_puts_replaces_and_deletes() {
        let mut c = Content::default();
        c.apply(&parse(&[&put("Observation", "o1"), &put("ImagingStudy", "s1")]).unwrap());
        assert_eq!(c.len(), 2);
        let replaced =
            r#"{"request":{"method":"PUT"},"resource":{"resourceType":"Observation","id":"o1","status":"amended"}}"#;
        c.apply(&parse(&[replaced, &delete("ImagingStudy/s1"), &delete("Observation/absent")]).unwrap());
        assert_eq!(c.len(), 1);
        assert_eq!(
            c.get(&key("Observation", "o1")).unwrap().get(),
            r#"{"resourceType":"Observation","id":"o1","status":"amended"}"#
        );
        assert!(c.get(&key("ImagingStudy", "s1")).is_none());
        assert_eq!(c.iter().map(|(k, _)| k).collect::<Vec<_>>(), vec![key("Observation", "o1")]);
    }

    #[test]
    fn req105_empty_content_is_empty_collection() {
        let c = Content::default();
        assert!(c.is_empty());
        assert_eq!(c.collection_bundle_json(), r#"{"resourceType":"Bundle","type":"collection"}"#);
        let e = c.context_entry();
        assert_eq!((e.key.as_str(), &e.field), ("content", &ValueField::Resource));
        assert_eq!(Content::from_collection_bundle(e.value.get()).unwrap(), c);
    }

    #[test]
    fn req105_collection_bundle_is_deterministic_and_has_no_request() {
        let mut a = Content::default();
        a.apply(&parse(&[&put("Observation", "o2"), &put("ImagingStudy", "s1"), &put("Observation", "o1")]).unwrap());
        let mut b = Content::default();
        b.apply(&parse(&[&put("Observation", "o1")]).unwrap());
        b.apply(&parse(&[&put("ImagingStudy", "s1"), &put("Observation", "o2")]).unwrap());
        assert_eq!(a, b);
        let json = a.collection_bundle_json();
        assert_eq!(json, b.collection_bundle_json());
        assert_eq!(
            json,
            concat!(
                r#"{"resourceType":"Bundle","type":"collection","entry":["#,
                r#"{"resource":{"resourceType":"ImagingStudy","id":"s1","status":"final"}},"#,
                r#"{"resource":{"resourceType":"Observation","id":"o1","status":"final"}},"#,
                r#"{"resource":{"resourceType":"Observation","id":"o2","status":"final"}}]}"#
            )
        );
        assert!(!json.contains("request"));
        assert_eq!(Content::from_collection_bundle(&json).unwrap(), a);
    }

    #[test]
    fn req105_reading_a_content_bundle() {
        assert!(matches!(
            Content::from_collection_bundle(r#"{"resourceType":"Bundle","type":"transaction"}"#),
            Err(BundleError::NotCollection { .. })
        ));
        let dup = r#"{"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"A","id":"1"}},{"resource":{"resourceType":"A","id":"1"}}]}"#;
        assert!(matches!(Content::from_collection_bundle(dup), Err(BundleError::Duplicate { .. })));
    }

    #[test]
    fn content_persists_as_a_json_object() {
        let mut c = Content::default();
        c.apply(&parse(&[&put("Observation", "o1")]).unwrap());
        let stored = serde_json::to_string(&c).unwrap();
        assert_eq!(stored, r#"{"Observation/o1":{"resourceType":"Observation","id":"o1","status":"final"}}"#);
        assert_eq!(serde_json::from_str::<Content>(&stored).unwrap(), c);
    }

    #[test]
    fn resource_keys() {
        assert_eq!(key("Observation", "o1").to_string(), "Observation/o1");
        assert_eq!(serde_json::to_string(&key("A", "1")).unwrap(), r#"{"resourceType":"A","id":"1"}"#);
        assert_eq!(ResourceKey::from_url(" Observation/o-1.2 "), Some(key("Observation", "o-1.2")));
        for none in ["urn:uuid:1", "Observation", "observation/1", "Observation/", "Observation?x=1", "", "a/b c"] {
            assert_eq!(ResourceKey::from_url(none), None, "{none:?}");
        }
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        #[derive(Clone, Debug)]
        enum Op {
            Put(usize, u8),
            Delete(usize),
        }

        const KEYS: [(&str, &str); 6] = [
            ("Observation", "o1"),
            ("Observation", "o2"),
            ("ImagingStudy", "s1"),
            ("DiagnosticReport", "r1"),
            ("Observation", "o3"),
            ("Patient", "p1"),
        ];

        fn op_json(op: &Op) -> String {
            match *op {
                Op::Put(k, v) => format!(
                    r#"{{"request":{{"method":"PUT"}},"resource":{{"resourceType":"{}","id":"{}","v":{v}}}}}"#,
                    KEYS[k].0, KEYS[k].1
                ),
                Op::Delete(k) => delete(&format!("{}/{}", KEYS[k].0, KEYS[k].1)),
            }
        }

        /// A valid Bundle: distinct targets, PUTs and DELETEs mixed.
        fn ops() -> impl Strategy<Value = Vec<Op>> {
            (
                proptest::sample::subsequence((0..KEYS.len()).collect::<Vec<_>>(), 0..=KEYS.len()).prop_shuffle(),
                proptest::collection::vec(any::<(bool, u8)>(), KEYS.len()),
            )
                .prop_map(|(keys, kinds)| {
                    keys.into_iter()
                        .zip(kinds)
                        .map(|(k, (is_put, v))| if is_put { Op::Put(k, v) } else { Op::Delete(k) })
                        .collect()
                })
        }

        fn bad_entry() -> impl Strategy<Value = String> {
            prop_oneof![
                Just(r#"{"request":{"method":"POST"},"resource":{"resourceType":"Observation","id":"new"}}"#.to_owned()),
                Just(r#"{"request":{"method":"PUT"}}"#.to_owned()),
                Just(r#"{"request":{"method":"DELETE"}}"#.to_owned()),
                Just(r#"{"fullUrl":"urn:uuid:1","request":{"method":"DELETE"}}"#.to_owned()),
                Just(r#"{"fullUrl":"Basic/b","request":{"method":"DELETE"},"resource":{"resourceType":"Basic","id":"b"}}"#.to_owned()),
                Just(r#"{"request":{"method":"GET","url":"Observation/o1"}}"#.to_owned()),
                Just(r#"{"fullUrl":"Basic/b","request":{"method":"DELETE"},"search":{}}"#.to_owned()),
                Just(r#"{"request":{"method":"PUT","url":"Basic/zz"},"resource":{"resourceType":"Basic","id":"b"}}"#.to_owned()),
                Just(r#"{"request":{"method":"PUT"},"resource":{"resourceType":"Basic"}}"#.to_owned()),
                Just("42".to_owned()),
                // Targets KEYS[0], which the generated entries may also target: a duplicate
                // then, and a valid entry otherwise; fixed up below so it is always bad.
                Just("dup".to_owned()),
            ]
        }

        fn model(state: &mut BTreeMap<usize, u8>, ops: &[Op]) {
            for op in ops {
                match *op {
                    Op::Put(k, v) => {
                        state.insert(k, v);
                    }
                    Op::Delete(k) => {
                        state.remove(&k);
                    }
                }
            }
        }

        proptest! {
            #[test]
            fn req111_neg17_apply_is_all_or_nothing(
                first in ops(),
                second in ops(),
                bad in bad_entry(),
                at in any::<proptest::sample::Index>(),
            ) {
                // Content after a valid bundle matches a plain model of PUT/DELETE.
                let mut content = Content::default();
                let mut state = BTreeMap::new();
                let entries: Vec<String> = first.iter().map(op_json).collect();
                let refs: Vec<&str> = entries.iter().map(String::as_str).collect();
                content.apply(&parse(&refs).unwrap());
                model(&mut state, &first);
                prop_assert_eq!(content.len(), state.len());
                for (k, v) in &state {
                    let got = content.get(&key(KEYS[*k].0, KEYS[*k].1)).unwrap().get();
                    prop_assert!(got.contains(&format!(r#""v":{v}}}"#)), "{}", got);
                }

                // One bad entry anywhere in an otherwise valid bundle: rejected, nothing changes.
                let before = content.clone();
                let mut entries: Vec<String> = second.iter().map(op_json).collect();
                let bad = if bad == "dup" {
                    match entries.first() {
                        Some(e) => e.clone(),
                        None => "[]".to_owned(),
                    }
                } else {
                    bad
                };
                entries.insert(at.index(entries.len() + 1), bad);
                let refs: Vec<&str> = entries.iter().map(String::as_str).collect();
                match parse(&refs) {
                    Ok(b) => {
                        content.apply(&b);
                        prop_assert!(false, "a bundle with a bad entry was accepted: {:?}", b);
                    }
                    Err(e) => prop_assert_eq!(e.http_status(), 400),
                }
                prop_assert_eq!(&content, &before);
            }

            #[test]
            fn req111_put_then_delete_leaves_key_absent(k in 0..KEYS.len(), v in any::<u8>(), others in ops()) {
                let mut content = Content::default();
                let entries: Vec<String> = others.iter().map(op_json).collect();
                let refs: Vec<&str> = entries.iter().map(String::as_str).collect();
                content.apply(&parse(&refs).unwrap());
                content.apply(&parse(&[&op_json(&Op::Put(k, v))]).unwrap());
                prop_assert!(content.get(&key(KEYS[k].0, KEYS[k].1)).is_some());
                let len = content.len();
                content.apply(&parse(&[&op_json(&Op::Delete(k))]).unwrap());
                prop_assert!(content.get(&key(KEYS[k].0, KEYS[k].1)).is_none());
                prop_assert_eq!(content.len(), len - 1);
            }
        }
    }
}
