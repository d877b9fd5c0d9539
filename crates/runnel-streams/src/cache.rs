//! The record cache in front of an aggregation's downstream (Kafka Streams'
//! `statestore.cache.max.bytes`): a table update is held back per key until
//! the task commits, or until the cache is full, and only the latest update
//! of each key goes downstream then, carrying the value the key had before
//! the first held-back update as its old value. Downstream operators and
//! output topics see fewer, coalesced changes; the final table is the same.
//!
//! The store itself is written at once (reads, joins and interactive
//! queries see every update); only the forwarding waits. A task's caches
//! are emptied at each commit before the outputs are sent, so the records
//! they forward are part of that commit (the same transaction under
//! exactly-once). A rollback rebuilds the task's nodes, and with them empty
//! caches: held-back updates of the rolled-back records vanish with them.
//! A size of 0 turns caching off: every update is forwarded at once.
//!
//! Windows that pass their retention while updates are held are expired
//! only after every cache of the task has been emptied: a held update of
//! one count still joins with the other count's window when it goes
//! downstream (the join of slide 8 lost a day's rows to a tombstone when
//! the window was dropped first).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use crate::backend::Headers;
use crate::record::{Change, Rec};
use crate::state::{lock, SharedStore};
use crate::topology::{Cx, Downstream};

/// Something a task empties at commit, forwarding what it held back.
pub(crate) trait Flush {
    /// Forwards every held-back update; returns whether there were any.
    fn flush(&mut self, cx: &mut Cx) -> bool;
    /// Runs what waited for every cache of the task to be empty.
    fn after_flush(&mut self) {}
}

pub(crate) type Flusher = Rc<RefCell<dyn Flush>>;

struct Held<K, A> {
    /// Order of first hold: flushes forward oldest first.
    seq: u64,
    key: K,
    new: A,
    old: Option<A>,
    timestamp: i64,
    headers: Headers,
    bytes: usize,
}

/// An aggregation's downstream behind a record cache of at most
/// `max_bytes` (approximately: key bytes plus a fixed cost per entry).
pub(crate) struct CachedDownstream<K, A> {
    ds: Downstream<K, Change<A>>,
    held: HashMap<Vec<u8>, Held<K, A>>,
    seq: u64,
    bytes: usize,
    max_bytes: usize,
    /// A window store and the window start before which its windows expire
    /// once the task's caches are empty.
    expiry: Option<(SharedStore, i64)>,
}

/// What one held entry is counted as besides its key bytes.
const ENTRY_OVERHEAD: usize = 96;

impl<K: Clone + 'static, A: Clone + 'static> CachedDownstream<K, A> {
    pub(crate) fn new(ds: Downstream<K, Change<A>>, max_bytes: usize) -> Self {
        CachedDownstream {
            ds,
            held: HashMap::new(),
            seq: 0,
            bytes: 0,
            max_bytes,
            expiry: None,
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.max_bytes > 0
    }

    pub(crate) fn needs_old_values(&self) -> bool {
        self.ds.needs_old_values()
    }

    /// Expires the windows of `store` starting before `horizon` after the
    /// task's next flush.
    pub(crate) fn defer_expiry(&mut self, store: &SharedStore, horizon: i64) {
        match &mut self.expiry {
            Some((_, h)) => *h = (*h).max(horizon),
            None => self.expiry = Some((store.clone(), horizon)),
        }
    }

    /// Forwards at once, past the cache (records that must not wait,
    /// or every record when caching is off).
    pub(crate) fn forward_now(&self, cx: &mut Cx, rec: Rec<K, Change<A>>) {
        self.ds.forward(cx, rec)
    }

    /// Holds back an update of the key whose store bytes are `kb`: `new`
    /// replaces a held value, `old` counts only for the first hold since
    /// the last flush. Forwards at once when caching is off; flushes
    /// everything when the cache grows past its size.
    pub(crate) fn update(&mut self, cx: &mut Cx, kb: Vec<u8>, rec: Rec<K, Change<A>>) {
        if !self.enabled() {
            return self.ds.forward(cx, rec);
        }
        let Rec {
            key,
            value: Change { new, old },
            timestamp,
            headers,
        } = rec;
        let Some(new) = new else {
            // Deletions are not held (aggregations do not produce them
            // through here): forward what is held for the key first.
            if let Some(h) = self.held.remove(&kb) {
                self.bytes -= h.bytes;
                self.emit(cx, h);
            }
            return self.ds.forward(
                cx,
                Rec {
                    key,
                    value: Change { new: None, old },
                    timestamp,
                    headers,
                },
            );
        };
        match self.held.get_mut(&kb) {
            Some(h) => {
                h.key = key;
                h.new = new;
                h.timestamp = timestamp;
                h.headers = headers;
            }
            None => {
                let bytes = kb.len() + ENTRY_OVERHEAD;
                self.bytes += bytes;
                self.seq += 1;
                self.held.insert(
                    kb,
                    Held {
                        seq: self.seq,
                        key,
                        new,
                        old,
                        timestamp,
                        headers,
                        bytes,
                    },
                );
                if self.bytes > self.max_bytes {
                    self.flush_all(cx);
                }
            }
        }
    }

    fn emit(&self, cx: &mut Cx, h: Held<K, A>) {
        self.ds.forward(
            cx,
            Rec {
                key: h.key,
                value: Change::new(Some(h.new), h.old),
                timestamp: h.timestamp,
                headers: h.headers,
            },
        );
    }

    fn flush_all(&mut self, cx: &mut Cx) -> bool {
        if self.held.is_empty() {
            return false;
        }
        let mut all: Vec<Held<K, A>> = self.held.drain().map(|(_, h)| h).collect();
        self.bytes = 0;
        all.sort_unstable_by_key(|h| h.seq);
        for h in all {
            self.emit(cx, h);
        }
        true
    }
}

impl<K: Clone + 'static, A: Clone + 'static> Flush for CachedDownstream<K, A> {
    fn flush(&mut self, cx: &mut Cx) -> bool {
        self.flush_all(cx)
    }
    fn after_flush(&mut self) {
        if let Some((store, horizon)) = self.expiry.take() {
            lock(&store).expire_windows(horizon);
        }
    }
}
