//! Dynamo's shopping cart: concurrent shoppers add and remove items on the
//! same carts, often from stale reads, and no add is ever lost.
//!
//! Starts a three-node cluster inside this process (real nodes: LMDB, QUIC,
//! mutual TLS on 127.0.0.1), runs the shoppers, then reads every cart and
//! checks that each acknowledged add is present unless a shopper removed
//! it. Concurrent writes come back as siblings; a union resolver merges
//! them, as Dynamo's cart did (Dynamo §4.4). The carts live in a
//! [`TypedStore`]: the shoppers handle `Cart` values, never bytes, and the
//! resolver is a function of carts.
//!
//! `cargo run --release --example shopping_cart [SHOPPERS] [OPS_PER_SHOPPER]`
//! exits 0 only if no add was lost.

use quire::cluster::ClusterBuilder;
use quire::{Client, Context, TypedStore};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

/// How much shopping to do.
#[derive(Clone, Copy, Debug)]
pub struct Workload {
    /// Concurrent shoppers.
    pub shoppers: usize,
    /// Operations per shopper.
    pub ops_per_shopper: usize,
    /// Carts shared by every shopper.
    pub carts: usize,
    /// Chance that a write is based on the shopper's last view of the cart
    /// instead of a fresh read (a stale context).
    pub stale_share: f64,
    /// Chance that an operation removes an item instead of adding one.
    pub remove_share: f64,
}

impl Default for Workload {
    fn default() -> Self {
        Self {
            shoppers: 8,
            ops_per_shopper: 400,
            carts: 4,
            stale_share: 0.5,
            remove_share: 0.2,
        }
    }
}

/// What the run saw and what the checker found.
#[derive(Debug, Default)]
pub struct Report {
    /// Adds acknowledged by the store.
    pub adds_acknowledged: usize,
    /// Removes acknowledged.
    pub removes_acknowledged: usize,
    /// Operations that failed (no quorum).
    pub failed: usize,
    /// Reads or writes that came back with more than one sibling (each
    /// merged by the union resolver).
    pub sibling_reads: usize,
    /// Most siblings seen at once.
    pub max_siblings: usize,
    /// Acknowledged adds, never removed, missing at the end. Must be 0.
    pub lost_adds: usize,
    /// Items visible at the end.
    pub items_at_end: usize,
    /// Items whose remove was acknowledged but that are visible at the end
    /// (the cart's remove records are merged by union too, so: 0).
    pub removed_but_visible: usize,
}

/// A cart as an observed-remove set: every add and every remove is a
/// record, merging is set union, and an item is in the cart when it was
/// added and not removed. Union never loses an add.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cart {
    added: BTreeSet<String>,
    removed: BTreeSet<String>,
}

impl Cart {
    /// The union of `self` and `other`.
    pub fn merge(mut self, other: Cart) -> Self {
        self.added.extend(other.added);
        self.removed.extend(other.removed);
        self
    }

    /// Items in the cart.
    pub fn items(&self) -> BTreeSet<String> {
        self.added.difference(&self.removed).cloned().collect()
    }
}

#[derive(Default)]
struct ShopperLog {
    adds: Vec<String>,
    removes_attempted: Vec<String>,
    removes_done: Vec<String>,
    adds_acknowledged: usize,
    removes_acknowledged: usize,
    failed: usize,
}

async fn shopper(id: usize, store: TypedStore<Cart>, w: Workload, seed: u64) -> ShopperLog {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut log = ShopperLog::default();
    // The shopper's last view of each cart: the merged cart and its context.
    let mut views: HashMap<usize, (Cart, Context)> = HashMap::new();
    let mut mine: Vec<(usize, String)> = Vec::new();
    for op in 0..w.ops_per_shopper {
        // Remove one of our own earlier adds from its cart, or add a new
        // item to a random cart.
        let removing = rng.gen_bool(w.remove_share) && !mine.is_empty();
        let (cart_no, item) = if removing {
            mine.swap_remove(rng.gen_range(0..mine.len()))
        } else {
            (rng.gen_range(0..w.carts), format!("s{id}-{op}"))
        };
        let key = format!("cart-{cart_no}");
        let stale = rng.gen_bool(w.stale_share) && views.contains_key(&cart_no);
        let (mut cart, context) = if stale {
            views[&cart_no].clone()
        } else {
            match store.get(&key).await {
                Ok(read) => (read.value.unwrap_or_default(), read.context),
                Err(_) => {
                    log.failed += 1;
                    if removing {
                        mine.push((cart_no, item)); // try again later
                    }
                    continue;
                }
            }
        };
        if removing {
            cart.removed.insert(item.clone());
            log.removes_attempted.push(item.clone());
        } else {
            cart.added.insert(item.clone());
        }
        match store.put(&key, &cart, &context).await {
            Ok(put) => {
                if removing {
                    log.removes_acknowledged += 1;
                    log.removes_done.push(item.clone());
                } else {
                    log.adds_acknowledged += 1;
                    log.adds.push(item.clone());
                    mine.push((cart_no, item));
                }
                views.insert(cart_no, (put.value.unwrap_or_default(), put.context));
            }
            Err(_) => {
                log.failed += 1;
                // An unacknowledged add may still have landed; never remove
                // it, never count it.
            }
        }
    }
    log
}

/// Runs the workload against `client` and checks the carts.
pub async fn shop(client: &Client, w: Workload, seed: u64) -> Result<Report, quire::ClientError> {
    let siblings_seen = Arc::new(std::sync::Mutex::new((0usize, 0usize)));
    let counter = siblings_seen.clone();
    // The union resolver, counting how many siblings it merges.
    let store = client.typed_store("default", move |carts: Vec<Cart>| {
        let mut c = counter.lock().unwrap_or_else(|e| e.into_inner());
        c.0 += 1;
        c.1 = c.1.max(carts.len());
        drop(c);
        carts.into_iter().fold(Cart::default(), Cart::merge)
    })?;
    let tasks: Vec<_> = (0..w.shoppers)
        .map(|id| tokio::spawn(shopper(id, store.clone(), w, seed + id as u64)))
        .collect();
    let mut report = Report::default();
    let mut acked_adds = BTreeSet::new();
    let mut removed = BTreeSet::new();
    let mut removes_acked = BTreeSet::new();
    for t in tasks {
        let log = t.await.expect("shopper task");
        report.adds_acknowledged += log.adds_acknowledged;
        report.removes_acknowledged += log.removes_acknowledged;
        report.failed += log.failed;
        acked_adds.extend(log.adds);
        removed.extend(log.removes_attempted);
        removes_acked.extend(log.removes_done);
    }
    let mut visible = BTreeSet::new();
    for cart_no in 0..w.carts {
        let read = store.get(format!("cart-{cart_no}")).await?;
        visible.extend(read.value.unwrap_or_default().items());
    }
    let (sibling_reads, max_siblings) = *siblings_seen.lock().unwrap_or_else(|e| e.into_inner());
    report.sibling_reads = sibling_reads;
    report.max_siblings = max_siblings;
    report.lost_adds = acked_adds
        .iter()
        .filter(|item| !removed.contains(*item) && !visible.contains(*item))
        .count();
    report.items_at_end = visible.len();
    report.removed_but_visible = removes_acked.intersection(&visible).count();
    Ok(report)
}

/// Starts a three-node cluster in this process (real nodes, in a
/// temporary directory), shops, stops the cluster.
pub async fn run(w: Workload, seed: u64) -> Result<Report, Box<dyn std::error::Error>> {
    let mut cluster = ClusterBuilder::new(3)
        .map_size_bytes(1 << 30)
        .start()
        .await?;
    let client = cluster.client().await?;
    let report = shop(&client, w, seed).await;
    client.close();
    cluster.stop_all().await;
    Ok(report?)
}

#[allow(dead_code)] // the test includes this file as a module
#[tokio::main]
async fn main() -> std::process::ExitCode {
    let mut args = std::env::args().skip(1);
    let mut w = Workload::default();
    if let Some(n) = args.next().and_then(|a| a.parse().ok()) {
        w.shoppers = n;
    }
    if let Some(n) = args.next().and_then(|a| a.parse().ok()) {
        w.ops_per_shopper = n;
    }
    println!(
        "{} shoppers x {} operations on {} carts (stale reads {:.0}%, removes {:.0}%)",
        w.shoppers,
        w.ops_per_shopper,
        w.carts,
        w.stale_share * 100.0,
        w.remove_share * 100.0
    );
    match run(w, rand::random()).await {
        Ok(r) => {
            println!("adds acknowledged:     {}", r.adds_acknowledged);
            println!("removes acknowledged:  {}", r.removes_acknowledged);
            println!("failed operations:     {}", r.failed);
            println!("sibling merges:        {}", r.sibling_reads);
            println!("max siblings at once:  {}", r.max_siblings);
            println!("items in carts at end: {}", r.items_at_end);
            println!("removed but visible:   {}", r.removed_but_visible);
            println!("lost adds:             {}", r.lost_adds);
            if r.lost_adds == 0 {
                println!("no add was lost");
                std::process::ExitCode::SUCCESS
            } else {
                eprintln!("shopping_cart: {} acknowledged adds were lost", r.lost_adds);
                std::process::ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("shopping_cart: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
