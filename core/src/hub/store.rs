//! How a topic's state is stored: rows, each within the platform's limits by construction.
//!
//! SQLite-backed Durable Objects refuse a string, BLOB or row over 2 MB (Cloudflare's
//! documented limits); local workerd does not. So the state is never one growing value: it
//! is a small meta row (context, versions, minted ids, the order of open contexts), one row
//! per open context's open event, one per open context's shared content, one per
//! subscription, one per recent request id. Each row has a bound the Hub enforces before it
//! changes anything ([`super::HubConfig`]: event size, content per context, pending answers
//! per subscriber; the parsers bound ids and names), and `tests/store_rows.rs` checks, over
//! arbitrary accepted input, that every row stays under [`ROW_LIMIT_BYTES`] and that what was
//! written restores the whole state.
//!
//! The Topic marks what each input changes ([`super::tracked`]); [`Topic::take_writes`] turns
//! the marks into [`Writes`] for the shell to apply in one transaction. [`MemoryStore`]
//! applies them to maps, for tests and the simulator.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use super::state::{OpenAnchor, TopicState, WriteMarks};
use super::tracked::{Anchors, Subscriptions};
use super::Topic;
use crate::bundle::Content;
use crate::catalog::EventName;
use crate::event::Event;
use crate::time::Timestamp;
use crate::wire::ResourceKey;

/// The largest row SQLite-backed Durable Objects store: 2 MB, key and value together
/// (Cloudflare's documented limits).
pub const ROW_LIMIT_BYTES: usize = 2_000_000;

/// How many derived event ids the meta row keeps (their SyncErrors are relayed as about the
/// source event): a bound on the meta row whatever the dedup window.
pub const DERIVED_IDS_KEPT: usize = 256;

/// A stored table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Table {
    /// The meta row (one, key `meta`).
    Meta,
    /// Open events, by anchor (`Type/id`).
    Open,
    /// Shared content, by anchor (`Type/id`).
    Content,
    /// Subscriptions, by endpoint token.
    Subscription,
}

impl Table {
    /// The SQL table name.
    pub fn name(self) -> &'static str {
        match self {
            Table::Meta => "topic_meta",
            Table::Open => "anchor_opens",
            Table::Content => "anchor_contents",
            Table::Subscription => "subscriptions",
        }
    }
}

/// One change to one row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RowWrite {
    /// Insert or replace the row `key` of `table` with `json`.
    Put {
        /// The table.
        table: Table,
        /// The row's key.
        key: String,
        /// Its value.
        json: String,
    },
    /// Delete the row `key` of `table` (absent is no error).
    Delete {
        /// The table.
        table: Table,
        /// The row's key.
        key: String,
    },
}

/// Changes to the rows of recent request ids (req 139), oldest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecentWrites {
    /// Delete every stored id first (the state came from an older format).
    pub rewrite: bool,
    /// Ids to append, with their fingerprints, oldest first.
    pub append: Vec<(String, String)>,
    /// Keep only the newest this many rows.
    pub keep: usize,
}

/// What one input changed, to be written in one transaction before any answer or message
/// leaves.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Writes {
    /// Row changes, meta first.
    pub rows: Vec<RowWrite>,
    /// Recent request id changes.
    pub recent: RecentWrites,
}

impl Writes {
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty() && self.recent.append.is_empty() && !self.recent.rewrite
    }

    /// The largest row written, in bytes (key and value).
    pub fn largest_row(&self) -> usize {
        let rows = self.rows.iter().map(|w| match w {
            RowWrite::Put { key, json, .. } => key.len() + json.len(),
            RowWrite::Delete { .. } => 0,
        });
        let recent = self.recent.append.iter().map(|(id, f)| id.len() + f.len());
        rows.chain(recent).max().unwrap_or(0)
    }

    /// Checks every row against `limit` before anything is written: a write that cannot be
    /// stored whole is not started.
    pub fn check(&self, limit: usize) -> Result<(), StoreError> {
        for w in &self.rows {
            if let RowWrite::Put { table, key, json } = w {
                let bytes = key.len() + json.len();
                if bytes > limit {
                    return Err(StoreError::RowTooLarge { table: *table, bytes, limit });
                }
            }
        }
        Ok(())
    }
}

/// Why the state could not be written or read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A row is over the storage's limit.
    #[error("a row of {table:?} would be {bytes} bytes, over the storage limit of {limit} bytes")]
    RowTooLarge {
        /// The table.
        table: Table,
        /// The row's size.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// The storage refused a write or a read.
    #[error("storage: {0}")]
    Storage(String),
    /// A stored row cannot be read.
    #[error("the stored {what} cannot be read: {reason}")]
    Unreadable {
        /// Which row.
        what: String,
        /// Why.
        reason: String,
    },
}

/// The size of the content row of an anchor with no content (`{}`).
pub(crate) const EMPTY_CONTENT_BYTES: usize = 2;

/// The stored open row of an anchor: its open event's JSON.
pub(crate) fn open_row(open: &Event) -> String {
    open.to_json()
}

/// The stored content row of an anchor.
pub(crate) fn content_row(content: &Content) -> String {
    serde_json::to_string(content).unwrap_or_else(|_| unreachable!("content serialises"))
}

/// The meta row: everything but subscriptions, open events, content and recent ids.
#[derive(Serialize)]
struct MetaOut<'a> {
    topic: &'a str,
    id_prefix: &'a str,
    next_seq: u64,
    anchors: Vec<AnchorIndexOut<'a>>,
    current: &'a Option<ResourceKey>,
    context_timestamp: &'a Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_change: &'a Option<(String, EventName)>,
    #[serde(skip_serializing_if = "VecDeque::is_empty")]
    derived_ids: &'a VecDeque<(String, (String, EventName))>,
    next_heartbeat: &'a Option<Timestamp>,
}

/// An open context in the meta row: its place (the list's order), version and derivation.
#[derive(Serialize)]
struct AnchorIndexOut<'a> {
    key: &'a ResourceKey,
    version_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    derived_from: &'a Option<ResourceKey>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source_event: &'a Option<(String, EventName)>,
}

/// The meta row read back; `A` is how it lists the open contexts: an index of rows (today),
/// or the whole anchors (the layout before rows, [`TopicState::from_legacy_parts`]).
#[derive(Deserialize)]
pub(crate) struct StoredMeta<A> {
    topic: String,
    id_prefix: String,
    next_seq: u64,
    pub(crate) anchors: A,
    current: Option<ResourceKey>,
    context_timestamp: Option<Timestamp>,
    #[serde(default)]
    last_change: Option<(String, EventName)>,
    #[serde(default)]
    derived_ids: VecDeque<(String, (String, EventName))>,
    next_heartbeat: Option<Timestamp>,
}

impl<A> StoredMeta<A> {
    /// The state, with its open contexts, subscriptions and recent ids.
    pub(crate) fn into_state(
        self,
        anchors: Anchors,
        subscriptions: Subscriptions,
        recent_ids: impl IntoIterator<Item = (String, String)>,
    ) -> TopicState {
        TopicState {
            topic: self.topic,
            id_prefix: self.id_prefix,
            next_seq: self.next_seq,
            subscriptions,
            anchors,
            current: self.current,
            context_timestamp: self.context_timestamp,
            last_change: self.last_change,
            derived_ids: self.derived_ids,
            recent_ids: recent_ids.into_iter().collect(),
            next_heartbeat: self.next_heartbeat,
            marks: WriteMarks::default(),
        }
    }
}

#[derive(Deserialize)]
struct AnchorIndexIn {
    key: ResourceKey,
    version_id: String,
    #[serde(default)]
    derived_from: Option<ResourceKey>,
    #[serde(default)]
    source_event: Option<(String, EventName)>,
}

impl TopicState {
    /// The meta row.
    pub fn meta_row(&self) -> String {
        let anchors = self
            .anchors
            .iter()
            .map(|a| AnchorIndexOut {
                key: &a.key,
                version_id: &a.version_id,
                derived_from: &a.derived_from,
                source_event: &a.source_event,
            })
            .collect();
        serde_json::to_string(&MetaOut {
            topic: &self.topic,
            id_prefix: &self.id_prefix,
            next_seq: self.next_seq,
            anchors,
            current: &self.current,
            context_timestamp: &self.context_timestamp,
            last_change: &self.last_change,
            derived_ids: &self.derived_ids,
            next_heartbeat: &self.next_heartbeat,
        })
        .unwrap_or_else(|_| unreachable!("the meta row serialises"))
    }

    /// Rebuilds the state from its rows: the meta row, the open and content rows by anchor
    /// key, the subscription rows, the recent ids oldest first. An anchor the meta row lists
    /// without an open row cannot be shown to anyone and is dropped; missing content is empty.
    pub fn from_rows(
        meta: &str,
        opens: &BTreeMap<String, String>,
        contents: &BTreeMap<String, String>,
        subscriptions: impl IntoIterator<Item = (String, String)>,
        recent_ids: impl IntoIterator<Item = (String, String)>,
    ) -> Result<TopicState, StoreError> {
        let bad =
            |what: &str, e: serde_json::Error| StoreError::Unreadable { what: what.to_owned(), reason: e.to_string() };
        let mut m: StoredMeta<Vec<AnchorIndexIn>> = serde_json::from_str(meta).map_err(|e| bad("meta row", e))?;
        let mut anchors = Vec::with_capacity(m.anchors.len());
        for a in std::mem::take(&mut m.anchors) {
            let k = a.key.to_string();
            let Some(open_json) = opens.get(&k) else { continue };
            let open: Event = serde_json::from_str(open_json).map_err(|e| bad(&format!("open event of {k}"), e))?;
            let (content, content_bytes) = match contents.get(&k) {
                Some(c) => (serde_json::from_str(c).map_err(|e| bad(&format!("content of {k}"), e))?, c.len()),
                None => (Content::default(), EMPTY_CONTENT_BYTES),
            };
            anchors.push(OpenAnchor {
                key: a.key,
                open,
                version_id: a.version_id,
                content,
                derived_from: a.derived_from,
                source_event: a.source_event,
                open_bytes: open_json.len(),
                content_bytes,
            });
        }
        let mut subs = BTreeMap::new();
        for (token, json) in subscriptions {
            let s = serde_json::from_str(&json).map_err(|e| bad("subscription", e))?;
            subs.insert(token, s);
        }
        Ok(m.into_state(Anchors::from_list(anchors), Subscriptions::from_map(subs), recent_ids))
    }
}

/// What to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteScope {
    /// The meta row, the open contexts' rows and the recent ids; subscription rows stay
    /// marked (a shell may write pending answers a little later: see the Durable Object).
    Context,
    /// Everything marked.
    All,
}

impl Topic {
    /// Turns what changed since the last call into row writes (`scope` says which), and
    /// clears those marks. The shell applies them in one transaction; if that fails it must
    /// drop this Topic and restore it from storage, since the marks are gone.
    pub fn take_writes(&mut self, scope: WriteScope) -> Writes {
        let s = &mut self.state;
        let mut rows = vec![RowWrite::Put { table: Table::Meta, key: "meta".into(), json: s.meta_row() }];
        for (key, touched) in s.anchors.take_dirty() {
            let k = key.to_string();
            let a = s.anchors.iter().find(|a| a.key == key);
            let put_or_delete = |table: Table, json: Option<String>| match json {
                Some(json) => RowWrite::Put { table, key: k.clone(), json },
                None => RowWrite::Delete { table, key: k.clone() },
            };
            if touched.open {
                rows.push(put_or_delete(Table::Open, a.map(|a| open_row(&a.open))));
            }
            if touched.content {
                rows.push(put_or_delete(Table::Content, a.map(|a| content_row(&a.content))));
            }
        }
        if scope == WriteScope::All {
            for token in s.subscriptions.take_dirty() {
                rows.push(match s.subscriptions.get(&token) {
                    Some(sub) => RowWrite::Put {
                        table: Table::Subscription,
                        json: serde_json::to_string(sub).unwrap_or_else(|_| unreachable!("subscriptions serialise")),
                        key: token,
                    },
                    None => RowWrite::Delete { table: Table::Subscription, key: token },
                });
            }
        }
        let marks = std::mem::take(&mut s.marks);
        let append_from =
            if marks.recent_rewrite { 0 } else { s.recent_ids.len().saturating_sub(marks.recent_appended) };
        let recent = RecentWrites {
            rewrite: marks.recent_rewrite,
            append: s.recent_ids.iter().skip(append_from).cloned().collect(),
            keep: self.config.dedup_window,
        };
        Writes { rows, recent }
    }

    /// Whether subscription rows are waiting to be written ([`WriteScope::Context`] left
    /// them).
    pub fn has_unwritten_subscriptions(&self) -> bool {
        !self.state.subscriptions.dirty_is_empty()
    }
}

/// The rows of one topic in memory: a store for tests and the simulator, applying
/// [`Writes`] as the Durable Object's SQLite tables do.
#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    /// Rows by table and key.
    pub rows: BTreeMap<Table, BTreeMap<String, String>>,
    /// Recent request ids, oldest first.
    pub recent: Vec<(String, String)>,
}

impl MemoryStore {
    /// Applies one transaction's writes, all or nothing: refused whole if a row is over
    /// `limit`.
    pub fn apply(&mut self, w: &Writes, limit: usize) -> Result<(), StoreError> {
        w.check(limit)?;
        for r in &w.rows {
            match r {
                RowWrite::Put { table, key, json } => {
                    self.rows.entry(*table).or_default().insert(key.clone(), json.clone());
                }
                RowWrite::Delete { table, key } => {
                    self.rows.entry(*table).or_default().remove(key);
                }
            }
        }
        if w.recent.rewrite {
            self.recent.clear();
        }
        self.recent.extend(w.recent.append.iter().cloned());
        let excess = self.recent.len().saturating_sub(w.recent.keep);
        self.recent.drain(..excess);
        Ok(())
    }

    /// The topic's state as stored, if anything is.
    pub fn load(&self) -> Result<Option<TopicState>, StoreError> {
        let empty = BTreeMap::new();
        let table = |t: Table| self.rows.get(&t).unwrap_or(&empty);
        let Some(meta) = table(Table::Meta).get("meta") else { return Ok(None) };
        let subs = table(Table::Subscription).iter().map(|(k, v)| (k.clone(), v.clone()));
        TopicState::from_rows(meta, table(Table::Open), table(Table::Content), subs, self.recent.iter().cloned())
            .map(Some)
    }

    /// Writes what `topic` changed since its last writes, then reads it back as an evicted or
    /// restarted Durable Object does; the restored state must equal the live one (a change
    /// not marked for writing would be lost here).
    pub fn evict(&mut self, topic: &mut Topic) -> Result<Topic, StoreError> {
        self.apply(&topic.take_writes(WriteScope::All), ROW_LIMIT_BYTES)?;
        let state = self.load()?.ok_or_else(|| StoreError::Storage("nothing stored".into()))?;
        Ok(Topic::restore(state, topic.config().clone()))
    }

    /// The rows of `topic` written from scratch (every row, whatever its marks), and the
    /// topic read back from them.
    pub fn whole(topic: &Topic) -> Result<(MemoryStore, Topic), StoreError> {
        let mut state = topic.state().clone();
        state.mark_all();
        let mut copy = Topic::restore(state, topic.config().clone());
        let mut store = MemoryStore::default();
        let back = store.evict(&mut copy)?;
        Ok((store, back))
    }

    /// Every stored row with its table and size (key and value), for limit checks.
    pub fn sizes(&self) -> impl Iterator<Item = (Table, usize)> + '_ {
        let rows = self.rows.iter().flat_map(|(t, m)| m.iter().map(move |(k, v)| (*t, k.len() + v.len())));
        rows
    }
}
