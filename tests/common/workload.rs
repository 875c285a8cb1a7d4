//! The clients of the Jepsen-style test: each runs until told to stop,
//! spreading operations over the test's stores, and records what it tried
//! and what was acknowledged for the checkers ([`super::checker`]).
//!
//! Siblings stores get set adds (read-modify-write through
//! [`quire::Store::update`] with a union resolver); last-write-wins stores
//! get register writes, with the context of a read or blind. Stores with
//! R = 1, R = 2 and R = N make reads at each quorum size part of the run.

use super::checker::RegisterWrite;
use quire::shared::ConflictPolicy;
use quire::{Client, Context, Sibling};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Keys per store.
pub const KEYS: usize = 4;

/// The key `i` of a store.
pub fn key(i: usize) -> String {
    format!("key-{i}")
}

/// A set as stored: one element per line.
pub fn decode(bytes: &[u8]) -> BTreeSet<String> {
    String::from_utf8_lossy(bytes)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

fn encode(set: &BTreeSet<String>) -> Vec<u8> {
    set.iter()
        .map(|e| format!("{e}\n"))
        .collect::<String>()
        .into_bytes()
}

/// The union of every sibling's set.
pub fn union_of(siblings: &[Sibling]) -> BTreeSet<String> {
    siblings.iter().flat_map(|s| decode(&s.value)).collect()
}

/// What one client did.
#[derive(Default)]
pub struct History {
    /// Set adds acknowledged: (store, key, element).
    pub adds_acked: Vec<(String, String, String)>,
    /// Set adds that failed or timed out.
    pub adds_unacked: Vec<(String, String, String)>,
    /// Register writes (LWW stores) attempted, by store.
    pub writes: Vec<(String, RegisterWrite)>,
    /// Reads that failed (register reads before a write).
    pub reads_failed: usize,
}

impl History {
    /// Operations attempted.
    pub fn ops(&self) -> usize {
        self.adds_acked.len() + self.adds_unacked.len() + self.writes.len() + self.reads_failed
    }

    /// Adds this history into `all`.
    pub fn merge_into(self, all: &mut History) {
        all.adds_acked.extend(self.adds_acked);
        all.adds_unacked.extend(self.adds_unacked);
        all.writes.extend(self.writes);
        all.reads_failed += self.reads_failed;
    }
}

/// One client's loop: `stores` are (name, policy); runs until `stop`.
/// `seen` keeps the most siblings any read returned; `started` is the
/// run's time origin.
pub async fn run_client(
    c: usize,
    client: Client,
    stores: Vec<(String, ConflictPolicy)>,
    stop: Arc<AtomicBool>,
    seen: Arc<AtomicUsize>,
    started: Instant,
) -> History {
    let mut rng = StdRng::seed_from_u64(c as u64);
    let mut history = History::default();
    let mut i = 0;
    while !stop.load(Ordering::Relaxed) {
        let (store, policy) = &stores[rng.gen_range(0..stores.len())];
        let k = key(rng.gen_range(0..KEYS));
        let element = format!("c{c}-{i}");
        i += 1;
        match policy {
            ConflictPolicy::Siblings => {
                let seen = seen.clone();
                let handle = client.store(store).expect("store exists").with_resolver(
                    move |s: Vec<Sibling>| {
                        seen.fetch_max(s.len(), Ordering::Relaxed);
                        vec![Sibling {
                            value: encode(&union_of(&s)),
                            timestamp_ms: s.iter().map(|s| s.timestamp_ms).max().unwrap_or(0),
                        }]
                    },
                );
                let result = handle
                    .update(k.as_bytes(), |current| {
                        let mut set = union_of(current);
                        set.insert(element.clone());
                        encode(&set)
                    })
                    .await;
                let entry = (store.clone(), k, element);
                match result {
                    Ok(_) => history.adds_acked.push(entry),
                    Err(_) => history.adds_unacked.push(entry),
                }
            }
            ConflictPolicy::Lww => {
                // Blind now and then: a blind write has seen nothing, so
                // only the stamps order it.
                let (context, read) = if rng.gen_bool(0.3) {
                    (Context::empty(), None)
                } else {
                    match client.get(store, k.as_bytes()).await {
                        Ok(r) => {
                            let read = r
                                .siblings
                                .first()
                                .map(|s| String::from_utf8_lossy(&s.value).into_owned());
                            (r.context, read)
                        }
                        Err(_) => {
                            history.reads_failed += 1;
                            continue;
                        }
                    }
                };
                let invoked = started.elapsed();
                let result = client
                    .put(store, k.as_bytes(), element.clone().into_bytes(), &context)
                    .await;
                let (stored_on, stamp_ms) = match &result {
                    Ok(r) => (
                        format!("{:?}", r.stored_on),
                        r.siblings.iter().map(|s| s.timestamp_ms).max(),
                    ),
                    Err(_) => (String::new(), None),
                };
                let write = RegisterWrite {
                    key: k,
                    value: element,
                    read,
                    invoked,
                    acked: result.ok().map(|_| started.elapsed()),
                    stored_on,
                    stamp_ms,
                };
                history.writes.push((store.clone(), write));
            }
        }
    }
    client.close();
    history
}
