//! The two collections of a topic's state that are stored row by row (subscriptions, open
//! contexts), each wrapped so that every change marks the rows it touches.
//!
//! Why wrappers and not marks at the call sites: a change that forgets its mark is a row
//! never written, a topic that rolls back after the next eviction. The wrappers give no
//! mutable access except through methods that mark (the compiler enforces it), and the
//! property test in `tests/store_rows.rs` checks that what the marks write restores the
//! whole state.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Deref;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::state::{OpenAnchor, Subscription};
use crate::bundle::Content;
use crate::event::Event;
use crate::wire::ResourceKey;

/// Subscriptions by endpoint token; each is one row.
#[derive(Clone, Debug, Default)]
pub(crate) struct Subscriptions {
    map: BTreeMap<String, Subscription>,
    /// Rows changed (or removed) since the last [`Subscriptions::take_dirty`].
    dirty: BTreeSet<String>,
}

impl Subscriptions {
    pub(crate) fn from_map(map: BTreeMap<String, Subscription>) -> Self {
        Subscriptions { map, dirty: BTreeSet::new() }
    }

    pub(crate) fn get_mut(&mut self, token: &str) -> Option<&mut Subscription> {
        let s = self.map.get_mut(token)?;
        self.dirty.insert(token.to_owned());
        Some(s)
    }

    pub(crate) fn insert(&mut self, token: String, sub: Subscription) {
        self.dirty.insert(token.clone());
        self.map.insert(token, sub);
    }

    pub(crate) fn remove(&mut self, token: &str) -> Option<Subscription> {
        let s = self.map.remove(token)?;
        self.dirty.insert(token.to_owned());
        Some(s)
    }

    /// Runs `f` on every subscription; those for which it returns `true` (it changed them)
    /// are marked.
    pub(crate) fn update_where(&mut self, mut f: impl FnMut(&mut Subscription) -> bool) {
        for (token, sub) in self.map.iter_mut() {
            if f(sub) {
                self.dirty.insert(token.clone());
            }
        }
    }

    /// Marks every row changed (a state read from an older format is rewritten whole).
    pub(crate) fn mark_all(&mut self) {
        self.dirty.extend(self.map.keys().cloned());
    }

    pub(crate) fn dirty_is_empty(&self) -> bool {
        self.dirty.is_empty()
    }

    pub(crate) fn take_dirty(&mut self) -> BTreeSet<String> {
        std::mem::take(&mut self.dirty)
    }
}

impl Deref for Subscriptions {
    type Target = BTreeMap<String, Subscription>;
    fn deref(&self) -> &Self::Target {
        &self.map
    }
}

impl PartialEq for Subscriptions {
    fn eq(&self, other: &Self) -> bool {
        self.map == other.map
    }
}

impl Serialize for Subscriptions {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.map.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Subscriptions {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        BTreeMap::deserialize(d).map(Subscriptions::from_map)
    }
}

/// Which rows of an anchor a change touches: its open event and its content are rows of their
/// own; its place, version and derivation are in the meta row.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct AnchorRows {
    pub(crate) open: bool,
    pub(crate) content: bool,
}

/// Open contexts, least recently opened first.
#[derive(Clone, Debug, Default)]
pub(crate) struct Anchors {
    list: Vec<OpenAnchor>,
    dirty: BTreeMap<ResourceKey, AnchorRows>,
}

impl Anchors {
    pub(crate) fn from_list(list: Vec<OpenAnchor>) -> Self {
        Anchors { list, dirty: BTreeMap::new() }
    }

    fn mark(&mut self, key: &ResourceKey, open: bool, content: bool) {
        let d = self.dirty.entry(key.clone()).or_default();
        d.open |= open;
        d.content |= content;
    }

    pub(crate) fn push(&mut self, a: OpenAnchor) {
        self.mark(&a.key.clone(), true, true);
        self.list.push(a);
    }

    pub(crate) fn remove(&mut self, i: usize) -> OpenAnchor {
        let a = self.list.remove(i);
        self.mark(&a.key, true, true);
        a
    }

    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&OpenAnchor) -> bool) {
        let gone: Vec<ResourceKey> = self.list.iter().filter(|a| !keep(a)).map(|a| a.key.clone()).collect();
        self.list.retain(|a| !gone.contains(&a.key));
        for k in &gone {
            self.mark(k, true, true);
        }
    }

    pub(crate) fn clear(&mut self) {
        let gone: Vec<ResourceKey> = self.list.drain(..).map(|a| a.key).collect();
        for k in &gone {
            self.mark(k, true, true);
        }
    }

    /// Makes anchor `i` the most recently opened (its order is in the meta row: no row).
    pub(crate) fn move_to_end(&mut self, i: usize) {
        let a = self.list.remove(i);
        self.list.push(a);
    }

    /// Replaces the open event of anchor `i` (its open row, `bytes` long).
    pub(crate) fn set_open(&mut self, i: usize, open: Event, bytes: usize) {
        self.list[i].open = open;
        self.list[i].open_bytes = bytes;
        let k = self.list[i].key.clone();
        self.mark(&k, true, false);
    }

    /// Replaces the content and the version of anchor `i` (its content row; the version is
    /// in the meta row).
    pub(crate) fn set_content(&mut self, i: usize, content: Content, bytes: usize, version: String) -> String {
        let a = &mut self.list[i];
        a.content = content;
        a.content_bytes = bytes;
        let prior = std::mem::replace(&mut a.version_id, version);
        let k = a.key.clone();
        self.mark(&k, false, true);
        prior
    }

    /// The fields of anchor `i` kept in the meta row (derivation, source event).
    pub(crate) fn set_derived_from(&mut self, i: usize, from: Option<ResourceKey>) {
        self.list[i].derived_from = from;
    }

    /// Clears the derivation of anchor `i` (it was opened as itself).
    pub(crate) fn set_not_derived(&mut self, i: usize) {
        self.list[i].derived_from = None;
        self.list[i].source_event = None;
    }

    /// Marks every row changed.
    pub(crate) fn mark_all(&mut self) {
        let keys: Vec<ResourceKey> = self.list.iter().map(|a| a.key.clone()).collect();
        for k in &keys {
            self.mark(k, true, true);
        }
    }

    pub(crate) fn take_dirty(&mut self) -> BTreeMap<ResourceKey, AnchorRows> {
        std::mem::take(&mut self.dirty)
    }

    /// Sets the stored sizes of every anchor (after reading a state whose rows were not
    /// measured).
    pub(crate) fn measure_all(&mut self) {
        for a in &mut self.list {
            a.open_bytes = super::store::open_row(&a.open).len();
            a.content_bytes = super::store::content_row(&a.content).len();
        }
    }
}

impl Deref for Anchors {
    type Target = Vec<OpenAnchor>;
    fn deref(&self) -> &Self::Target {
        &self.list
    }
}

impl PartialEq for Anchors {
    fn eq(&self, other: &Self) -> bool {
        self.list == other.list
    }
}

impl Serialize for Anchors {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.list.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Anchors {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut a = Anchors::from_list(Vec::deserialize(d)?);
        a.measure_all();
        Ok(a)
    }
}
