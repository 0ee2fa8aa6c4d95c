//! A topic's SQLite storage: the tables, reading a topic back (today's rows, or the two
//! earlier layouts, migrated on the next write), and writing what the core marked
//! ([`fhircast_core::hub::store::Writes`]) in one transaction.
//!
//! Every write is all or nothing: rows are checked against the row limit first (a write that
//! cannot be stored whole is not started), then applied inside `transactionSync`, which rolls
//! back if any statement fails. The caller decides what a failure means (the object answers
//! 503, sends nothing, and reloads the topic from what is stored).

use fhircast_core::hub::store::{RowWrite, StoreError, Writes};
use fhircast_core::hub::stored_facts::{self, Element};
use fhircast_core::hub::TopicState;
use std::collections::BTreeMap;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use worker::{SqlStorage, SqlStorageValue, State};

#[wasm_bindgen]
extern "C" {
    /// `ctx.storage`, for the one method workers-rs does not bind.
    type JsStorage;
    /// `storage.transactionSync(fn)`: runs `fn` in a transaction, rolled back if it throws.
    #[wasm_bindgen(method, js_name = transactionSync, catch)]
    fn transaction_sync(this: &JsStorage, f: &js_sys::Function) -> Result<JsValue, JsValue>;
    /// `storage.setAlarm(ms)`.
    #[wasm_bindgen(method, js_name = setAlarm, catch)]
    fn set_alarm_js(this: &JsStorage, at_ms: f64) -> Result<js_sys::Promise, JsValue>;
    /// `storage.deleteAlarm()`.
    #[wasm_bindgen(method, js_name = deleteAlarm, catch)]
    fn delete_alarm_js(this: &JsStorage) -> Result<js_sys::Promise, JsValue>;
}

thread_local! {
    /// Logs a rejected alarm change (one closure for every call).
    static LOG_ALARM_ERROR: Closure<dyn FnMut(JsValue)> =
        Closure::new(|e: JsValue| worker::console_error!("setting the alarm: {e:?}"));
}

const SCHEMA: [&str; 7] = [
    "CREATE TABLE IF NOT EXISTS topic_meta (key TEXT PRIMARY KEY, json TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS anchor_opens (key TEXT PRIMARY KEY, json TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS anchor_contents (key TEXT PRIMARY KEY, json TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS subscriptions (key TEXT PRIMARY KEY, json TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS recent_ids (seq INTEGER PRIMARY KEY, id TEXT NOT NULL, fingerprint TEXT NOT NULL)",
    // The timeline (issue 17): the facts of one write in one row (a JSON array), numbered
    // `first..=last`; the rows holding the last TIMELINE_LIMIT facts are kept. Never emptied
    // while recording, so numbers keep growing and a reader's `since` stays meaningful.
    "CREATE TABLE IF NOT EXISTS timeline_batches (last INTEGER PRIMARY KEY, first INTEGER NOT NULL, facts TEXT NOT NULL)",
    // A layout of the timeline that never left this repository's main branch (a row per fact).
    "DROP TABLE IF EXISTS timeline",
];

/// The most bytes of facts in one row: well under the platform's 2 MB per value, whatever the
/// facts (a write with more is split over several rows; one element is at most about 320 KB:
/// 200 answers, or a `notified` fact's 64 KB of names, `stored_facts`). Half the row limit when
/// that is lower (`STORAGE_ROW_LIMIT_BYTES`, which tests lower to see rows split).
const TIMELINE_CHUNK_BYTES: usize = 512 << 10;

/// Facts to append to the timeline (stored elements: [`fhircast_core::hub::stored_facts`]),
/// and how many facts to keep.
pub(crate) struct TimelineAppend {
    pub(crate) elements: Vec<Element>,
    pub(crate) keep: usize,
}

impl TimelineAppend {
    /// How many facts it holds (each is numbered).
    fn facts(&self) -> u64 {
        self.elements.iter().map(|e| e.facts as u64).sum()
    }
}

/// One stored fact: its number and its JSON.
pub(crate) struct StoredFact {
    pub(crate) seq: u64,
    pub(crate) fact: String,
}

/// Appends the facts numbered from `first` as rows of at most [`TIMELINE_CHUNK_BYTES`] (one
/// statement each, usually one for the whole write: per fact this was a measurable part of
/// recording's cost, BENCHMARKS.md), then drops the rows entirely older than the last `keep`.
/// A row holds a JSON array of elements and is numbered by the facts in them. Returns the
/// next number.
fn append_timeline(sql: &SqlStorage, t: &TimelineAppend, first: u64, chunk_bytes: usize) -> Result<u64, worker::Error> {
    if t.elements.is_empty() {
        return Ok(first);
    }
    let mut next = first;
    let mut chunk = String::from("[");
    let mut chunk_first = first;
    let flush = |chunk: &mut String, from: u64, to: u64| -> Result<(), worker::Error> {
        chunk.push(']');
        let (last, first) = (SqlStorageValue::Integer(to as i64), SqlStorageValue::Integer(from as i64));
        sql.exec(
            "INSERT INTO timeline_batches (last, first, facts) VALUES (?, ?, ?)",
            Some(vec![last, first, chunk.as_str().into()]),
        )?;
        chunk.clear();
        chunk.push('[');
        Ok(())
    };
    for e in &t.elements {
        if chunk.len() > 1 && chunk.len() + e.json.len() > chunk_bytes {
            flush(&mut chunk, chunk_first, next - 1)?;
            chunk_first = next;
        }
        if chunk.len() > 1 {
            chunk.push(',');
        }
        chunk.push_str(&e.json);
        next += e.facts as u64;
    }
    flush(&mut chunk, chunk_first, next - 1)?;
    let keep = t.keep.max(1) as u64;
    if next - 1 > keep {
        sql.exec(
            "DELETE FROM timeline_batches WHERE last <= ?",
            Some(vec![SqlStorageValue::Integer((next - 1 - keep) as i64)]),
        )?;
    }
    Ok(next)
}

/// The tables of earlier layouts, emptied by the first write after a migration.
const LEGACY_TABLES: [&str; 2] = ["topic_parts", "topic_state"];

/// One topic's storage.
pub(crate) struct TopicStore {
    sql: SqlStorage,
    js: JsStorage,
    /// The largest row written (key and value): the platform's 2 MB, or less where a test
    /// configures it (`STORAGE_ROW_LIMIT_BYTES`).
    row_limit: usize,
    /// The stored state came from an earlier layout: the next write also empties its tables.
    migrating: std::cell::Cell<bool>,
    /// The next timeline number, once read from storage.
    timeline_next: std::cell::Cell<Option<u64>>,
}

fn storage_error(e: impl std::fmt::Display) -> StoreError {
    StoreError::Storage(e.to_string())
}

#[derive(serde::Deserialize)]
struct KeyJson {
    key: String,
    json: String,
}

impl TopicStore {
    /// Opens the topic's storage and creates the tables if needed.
    pub(crate) fn open(state: &State, row_limit: usize) -> Result<TopicStore, StoreError> {
        let sql = state.storage().sql();
        for ddl in SCHEMA {
            sql.exec(ddl, None).map_err(storage_error)?;
        }
        let js = js_sys::Reflect::get(state.as_raw(), &JsValue::from_str("storage"))
            .map_err(|_| storage_error("ctx.storage is not available"))?
            .unchecked_into::<JsStorage>();
        Ok(TopicStore {
            sql,
            js,
            row_limit,
            migrating: std::cell::Cell::new(false),
            timeline_next: std::cell::Cell::new(None),
        })
    }

    fn rows(&self, query: &str) -> Result<Vec<KeyJson>, StoreError> {
        self.sql.exec(query, None).and_then(|c| c.to_array()).map_err(storage_error)
    }

    fn table_exists(&self, name: &str) -> Result<bool, StoreError> {
        let found: Vec<serde_json::Value> = self
            .sql
            .exec("SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?", Some(vec![name.into()]))
            .and_then(|c| c.to_array())
            .map_err(storage_error)?;
        Ok(!found.is_empty())
    }

    fn recent_ids(&self) -> Result<Vec<(String, String)>, StoreError> {
        #[derive(serde::Deserialize)]
        struct Recent {
            id: String,
            fingerprint: String,
        }
        let rows: Vec<Recent> = self
            .sql
            .exec("SELECT id, fingerprint FROM recent_ids ORDER BY seq", None)
            .and_then(|c| c.to_array())
            .map_err(storage_error)?;
        Ok(rows.into_iter().map(|r| (r.id, r.fingerprint)).collect())
    }

    /// The stored topic, if any. A topic stored in an earlier layout comes back with every
    /// row marked, so the next write rewrites it in today's layout.
    pub(crate) fn load(&self) -> Result<Option<TopicState>, StoreError> {
        let meta = self.rows("SELECT key, json FROM topic_meta")?;
        if let Some(meta) = meta.into_iter().find(|r| r.key == "meta") {
            let map = |rows: Vec<KeyJson>| rows.into_iter().map(|r| (r.key, r.json)).collect::<BTreeMap<_, _>>();
            let opens = map(self.rows("SELECT key, json FROM anchor_opens")?);
            let contents = map(self.rows("SELECT key, json FROM anchor_contents")?);
            let subs = self.rows("SELECT key, json FROM subscriptions")?.into_iter().map(|r| (r.key, r.json));
            return TopicState::from_rows(&meta.json, &opens, &contents, subs, self.recent_ids()?).map(Some);
        }
        let unreadable =
            |what: &str, e: serde_json::Error| StoreError::Unreadable { what: what.into(), reason: e.to_string() };
        // The layout before rows: a meta part with whole anchors, a subscriptions part.
        if self.table_exists("topic_parts")? {
            let parts = self.rows("SELECT part AS key, json FROM topic_parts")?;
            let part = |name: &str| parts.iter().find(|p| p.key == name).map(|p| p.json.as_str());
            if let Some(meta) = part("meta") {
                let state =
                    TopicState::from_legacy_parts(meta, part("subscriptions").unwrap_or("{}"), self.recent_ids()?)
                        .map_err(|e| unreadable("topic_parts", e))?;
                self.migrating.set(true);
                return Ok(Some(state));
            }
        }
        // The first layout: the whole state in one row.
        if self.table_exists("topic_state")? {
            let rows = self.rows("SELECT 'state' AS key, json FROM topic_state WHERE id = 1")?;
            if let Some(row) = rows.into_iter().next() {
                let mut state: TopicState =
                    serde_json::from_str(&row.json).map_err(|e| unreadable("topic_state", e))?;
                state.mark_all();
                self.migrating.set(true);
                return Ok(Some(state));
            }
        }
        Ok(None)
    }

    /// Writes `w` and appends `timeline` whole or not at all.
    pub(crate) fn write(&self, w: Writes, timeline: TimelineAppend) -> Result<(), StoreError> {
        w.check(self.row_limit)?;
        let migrating = self.migrating.get();
        let first = self.timeline_next()?;
        let next = first + timeline.facts();
        let chunk_bytes = self.timeline_chunk_bytes();
        // The closure must be 'static: it takes the facts.
        self.transaction(move |sql| {
            append_timeline(sql, &timeline, first, chunk_bytes)?;
            for r in &w.rows {
                match r {
                    // Table names are fixed (`Table::name`), never from input.
                    RowWrite::Put { table, key, json } => {
                        let q = format!(
                            "INSERT INTO {} (key, json) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET json = excluded.json",
                            table.name()
                        );
                        sql.exec(&q, Some(vec![key.as_str().into(), json.as_str().into()]))?;
                    }
                    RowWrite::Delete { table, key } => {
                        let q = format!("DELETE FROM {} WHERE key = ?", table.name());
                        sql.exec(&q, Some(vec![key.as_str().into()]))?;
                    }
                }
            }
            if w.recent.rewrite {
                sql.exec("DELETE FROM recent_ids", None)?;
            }
            for (id, fingerprint) in &w.recent.append {
                sql.exec(
                    "INSERT INTO recent_ids (id, fingerprint) VALUES (?, ?)",
                    Some(vec![id.as_str().into(), fingerprint.as_str().into()]),
                )?;
            }
            if !w.recent.append.is_empty() {
                let keep = SqlStorageValue::Integer(w.recent.keep as i64);
                sql.exec("DELETE FROM recent_ids WHERE seq <= (SELECT MAX(seq) FROM recent_ids) - ?", Some(vec![keep]))
                    ?;
            }
            if migrating {
                for t in LEGACY_TABLES {
                    sql.exec(&format!("DROP TABLE IF EXISTS {t}"), None)?;
                }
            }
            Ok(())
        })?;
        self.migrating.set(false);
        self.timeline_next.set(Some(next));
        Ok(())
    }
}

impl TopicStore {
    fn timeline_chunk_bytes(&self) -> usize {
        TIMELINE_CHUNK_BYTES.min(self.row_limit / 2)
    }

    /// The next timeline number: one past the last stored (read once).
    fn timeline_next(&self) -> Result<u64, StoreError> {
        if let Some(n) = self.timeline_next.get() {
            return Ok(n);
        }
        #[derive(serde::Deserialize)]
        struct Last {
            last: Option<f64>,
        }
        let rows: Vec<Last> = self
            .sql
            .exec("SELECT MAX(last) AS last FROM timeline_batches", None)
            .and_then(|c| c.to_array())
            .map_err(storage_error)?;
        let n = rows.first().and_then(|r| r.last).map_or(1, |l| l as u64 + 1);
        self.timeline_next.set(Some(n));
        Ok(n)
    }

    /// Appends facts to the timeline on their own (a read of the timeline writes what is
    /// pending first), in one transaction.
    pub(crate) fn append_timeline(&self, timeline: TimelineAppend) -> Result<(), StoreError> {
        if timeline.elements.is_empty() {
            return Ok(());
        }
        let first = self.timeline_next()?;
        let next = first + timeline.facts();
        let chunk_bytes = self.timeline_chunk_bytes();
        self.transaction(move |sql| append_timeline(sql, &timeline, first, chunk_bytes).map(|_| ()))?;
        self.timeline_next.set(Some(next));
        Ok(())
    }

    /// Runs `f` in `transactionSync`: every statement it runs, or none (an error rolls back).
    fn transaction(
        &self,
        f: impl FnOnce(&SqlStorage) -> Result<(), worker::Error> + 'static,
    ) -> Result<(), StoreError> {
        let sql = self.sql.clone();
        let run = Closure::once(move || -> Result<JsValue, JsValue> {
            f(&sql).map_err(|e| JsValue::from_str(&e.to_string()))?;
            Ok(JsValue::UNDEFINED)
        });
        self.js
            .transaction_sync(run.as_ref().unchecked_ref())
            .map_err(|e| storage_error(e.as_string().unwrap_or_else(|| format!("{e:?}"))))?;
        Ok(())
    }

    /// The facts after `since` among the last `keep`, oldest first, at most `limit`.
    pub(crate) fn timeline(&self, since: u64, limit: usize, keep: usize) -> Result<Vec<StoredFact>, StoreError> {
        #[derive(serde::Deserialize)]
        struct Batch {
            first: f64,
            facts: String,
        }
        let last = self.timeline_next()?.saturating_sub(1);
        let floor = since.max(last.saturating_sub(keep as u64));
        let rows: Vec<Batch> = self
            .sql
            .exec(
                "SELECT first, facts FROM timeline_batches WHERE last > ? ORDER BY last",
                Some(vec![SqlStorageValue::Integer(floor.min(i64::MAX as u64) as i64)]),
            )
            .and_then(|c| c.to_array())
            .map_err(storage_error)?;
        let unreadable =
            |e: serde_json::Error| StoreError::Unreadable { what: "timeline_batches".into(), reason: e.to_string() };
        let mut out = Vec::new();
        for row in rows {
            let elements: Vec<&serde_json::value::RawValue> = serde_json::from_str(&row.facts).map_err(unreadable)?;
            let mut seq = row.first as u64;
            for e in elements {
                // Elements entirely at or before `floor` are skipped without being expanded.
                let n = stored_facts::count(e.get()).map_err(unreadable)? as u64;
                if seq + n - 1 > floor {
                    for (i, fact) in stored_facts::expand(e.get()).map_err(unreadable)?.into_iter().enumerate() {
                        let s = seq + i as u64;
                        if s > floor {
                            if out.len() == limit {
                                return Ok(out);
                            }
                            out.push(StoredFact { seq: s, fact });
                        }
                    }
                }
                seq += n;
            }
        }
        Ok(out)
    }

    /// Sets the one alarm to `next` (ms since the epoch), or deletes it, without waiting: the
    /// runtime orders it with the object's other storage operations (and its output gate holds
    /// what the object sends until they are durable), so no input has to become asynchronous
    /// for it. A refusal is logged.
    pub(crate) fn set_alarm(&self, next: Option<i64>) -> Result<(), StoreError> {
        let promise = match next {
            Some(ms) => self.js.set_alarm_js(ms as f64),
            None => self.js.delete_alarm_js(),
        }
        .map_err(|e| storage_error(format!("{e:?}")))?;
        LOG_ALARM_ERROR.with(|log| {
            let _ = promise.catch(log);
        });
        Ok(())
    }
}
