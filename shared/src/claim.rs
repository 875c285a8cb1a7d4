//! The claim: which node owns which partition, weighted, zone-aware and
//! moving as little as it can when the cluster changes.
//!
//! A key's preference list is every distinct node met walking the ring
//! clockwise from its partition ([`crate::ring::PreferenceList`]); its first
//! `N` nodes hold the key. The claim decides what those walks meet.
//!
//! # What is guaranteed, in priority order
//!
//! The three wishes of a claim (spread, weight, little movement) conflict
//! in corner cases; when they do, the earlier one wins.
//!
//! 1. **Every partition has a present owner** of positive weight (weight 0
//!    drains a node; if every weight is 0 all count as 1).
//! 2. **Spread.** Let `w = min(target_n, Q)` (the window), `r = Q / w`.
//!    - *By zone*, when the cluster has at least `w` zones: every
//!      preference list's first `w` nodes lie in `w` distinct zones, for
//!      every partition. If `zones · r ≥ Q` (for example `Q % w == 0`, or
//!      at least `w + 1` zones and `Q ≥ w²`) this holds in the strict form:
//!      **any `w` consecutive owners are in `w` distinct zones** (hence are
//!      `w` distinct nodes). Otherwise (typically exactly `w` zones and
//!      `Q % w != 0`, where the strict form is impossible across the wrap)
//!      a node may own a run of adjacent partitions: the walk skips a
//!      repeated node, so the preference lists still span `w` zones.
//!    - *By node*, when there are fewer than `w` zones but more than `w`
//!      nodes: any `w` consecutive owners are `w` distinct nodes if
//!      `nodes · r ≥ Q`; otherwise the same with runs of one node allowed.
//!    - With at most `w` nodes (and fewer than `w` zones), or `w = 1`,
//!      every preference list holds every node anyway: no spread rule.
//! 3. **Weight.** Under the strict forms no zone (by zone) or node (by node)
//!    can own more than `r` partitions; with runs, every zone (or node)
//!    owns `Q / items` (as the window forces equal counts). Each item's
//!    share is its weight's proportion, water-filled under that cap; a
//!    zone's share is split among its nodes by weight. Every node and every
//!    zone owns the floor or the ceiling of its share (within ±1 of the
//!    capped proportional target; plain `Q·w/W` when nothing is capped).
//!    One exception: with runs, a zone has only `r` slots, so when it has
//!    more nodes than that, the partitions it owns beyond `r` can leave a
//!    node that many off its band (one stretched slot, one node without).
//! 4. **Little movement.** Given the previous owners, the claim starts from
//!    them: partitions of departed nodes, and partitions that break the
//!    spread rule, become holes and are refilled by matching; then two
//!    searches take the table to the new counts and the one that moves
//!    less wins (`rebalance`): single hand-overs from nodes above their
//!    count to nodes below it, and hand-over chains of any length priced
//!    by the moves they add (a node takes a partition, the node it took it
//!    from takes another, until a node above its count gives one up; a
//!    node can also be shifted along the ring). Every step keeps the rule.
//!    So, without a rule, every change moves exactly what the new counts
//!    require (a removal: only the departed node's partitions). With one,
//!    most changes still do (`claim::tests::survey`: 548 of 600 random
//!    changes moved exactly their gains), and when every item stays below
//!    80 % of its cap `Q / w` a change moves at most `3 · gains + 4`
//!    (property-tested; the worst seen: 24 moves for 8 gains, `Q = 64`).
//!    Adding an equal-weight node by node under an unchanged rule moves
//!    exactly its gains, at most `1.25 · Q/(n+1)`. Exactly minimal is not
//!    always possible under a rule: a node whose count must grow may sit
//!    within `w - 1` partitions of every partition a removal frees (seen:
//!    a node of 45 partitions beside each of the 39 freed ones, `Q =
//!    1024`, `w = 4`), and can then grow only by taking a partition that
//!    another node gives up.
//!    What is *not* bounded: a change that alters the rule itself (for
//!    example a third zone appearing with `N = 3`), or that brings an item
//!    to its cap, which forces it onto nearly every `w`-th partition. When
//!    neither search reaches the counts, the fresh layout is used, turned
//!    and relabelled to keep as many previous owners as it can
//!    (`layout::aligned`). In the survey 5 of 600 changes moved more than
//!    twice their gains, each of them one of these two kinds.
//!
//! The result is deterministic: ties are broken by a fixed hash of node
//! ids, never by hash-map order or randomness.

mod chains;
mod handover;
mod layout;
mod rebalance;
mod rules;
mod targets;

#[cfg(test)]
mod tests;

pub use crate::ids::NodeId;
use targets::Share;

/// A node asking for partitions: what the claim needs to know of a member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claimant {
    /// The node's id; claimants are ordered and tie-broken by it.
    pub id: NodeId,
    /// Failure domain: a key's replicas go to distinct zones when the
    /// cluster has enough of them.
    pub zone: String,
    /// Relative capacity: partitions are claimed in proportion. 0 owns
    /// nothing, so a node can be drained before it leaves.
    pub weight: u32,
}

/// Assigns every one of `partitions` an owner among `claimants`.
///
/// `target_n` is the replica count the layout is built for (the largest
/// `N` of the cluster's stores; 0 counts as 1). `previous` is the current
/// owner table, `None` for a new cluster; when given (and of the right
/// length) the claim moves as few partitions as the new layout requires.
/// Claimants sharing an id count once (the first). The module doc states
/// what the result guarantees. Empty `claimants` give an empty table.
pub fn claim(
    claimants: &[Claimant],
    partitions: u32,
    target_n: usize,
    previous: Option<&[NodeId]>,
) -> Vec<NodeId> {
    let Some(plan) = Plan::new(claimants, partitions as usize, target_n) else {
        return Vec::new();
    };
    let previous: Option<Vec<Option<u32>>> = previous
        .filter(|p| p.len() == plan.q)
        .map(|p| p.iter().map(|id| plan.index_of(*id)).collect());
    let owners = match previous {
        Some(prev) => {
            rebalance::rebalance(&plan, &prev).unwrap_or_else(|| layout::aligned(&plan, &prev))
        }
        None => layout::fresh(&plan),
    };
    owners.iter().map(|&i| plan.ids[i as usize]).collect()
}

/// The spread rule the layout keeps (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Spread {
    /// Every walk meets every node anyway: no rule.
    Free,
    /// Any `window` consecutive owners belong to distinct items.
    Strict,
    /// As `Strict` once runs of one node are collapsed to one.
    Runs,
}

/// Everything about the claimants the claim works from, by index: node
/// `i` is `ids[i]` in zone `zone_of[i]`.
struct Plan {
    /// Partition count `Q`.
    q: usize,
    /// Node ids (positive weight only), sorted.
    ids: Vec<NodeId>,
    /// Each node's weight.
    weights: Vec<u64>,
    /// Each node's zone index.
    zone_of: Vec<usize>,
    /// Zone count.
    zones: usize,
    /// Fixed tie-break per node (a hash of its id).
    rank: Vec<u64>,
    /// Window `w = min(target_n, Q)`.
    window: usize,
    /// Whether the items the window keeps apart are zones (else nodes).
    by_zone: bool,
    /// Which form of the rule holds.
    spread: Spread,
}

impl Plan {
    /// Indexes the claimants and chooses the spread rule; `None` if there
    /// are no claimants or no partitions.
    fn new(claimants: &[Claimant], q: usize, target_n: usize) -> Option<Self> {
        let mut sorted: Vec<&Claimant> = claimants.iter().collect();
        sorted.sort_by_key(|c| c.id);
        sorted.dedup_by_key(|c| c.id);
        let all_zero = sorted.iter().all(|c| c.weight == 0);
        sorted.retain(|c| all_zero || c.weight > 0);
        if sorted.is_empty() || q == 0 {
            return None;
        }
        let mut zone_names: Vec<&str> = sorted.iter().map(|c| c.zone.as_str()).collect();
        zone_names.sort_unstable();
        zone_names.dedup();
        let zone_of: Vec<usize> = sorted
            .iter()
            .map(|c| zone_names.binary_search(&c.zone.as_str()).unwrap_or(0))
            .collect();
        let window = target_n.max(1).min(q);
        let (nodes, zones) = (sorted.len(), zone_names.len());
        let by_zone = window > 1 && zones >= window;
        let items = if by_zone { zones } else { nodes };
        let spread = if window <= 1 || items <= window && !by_zone {
            Spread::Free
        } else if items * (q / window) >= q {
            Spread::Strict
        } else {
            Spread::Runs
        };
        Some(Self {
            q,
            ids: sorted.iter().map(|c| c.id).collect(),
            weights: sorted
                .iter()
                .map(|c| u64::from(c.weight.max(u32::from(all_zero))))
                .collect(),
            zone_of,
            zones,
            rank: sorted.iter().map(|c| splitmix(c.id.get())).collect(),
            window,
            by_zone,
            spread,
        })
    }

    /// Node index of `id`, if it is a claimant.
    fn index_of(&self, id: NodeId) -> Option<u32> {
        self.ids.binary_search(&id).ok().map(|i| i as u32)
    }

    /// The item the window keeps apart for node `i`: its zone or itself.
    fn item(&self, node: u32) -> usize {
        if self.by_zone {
            self.zone_of[node as usize]
        } else {
            node as usize
        }
    }

    /// Number of items.
    fn items(&self) -> usize {
        if self.by_zone {
            self.zones
        } else {
            self.ids.len()
        }
    }

    /// Whole-partition targets per node, rounded towards `current` counts
    /// so that rounding alone never moves a partition, with each node's
    /// band (floor and ceiling of its share): two nodes of one item may
    /// trade a rounded-up unit within their bands.
    fn targets(&self, current: &[u64]) -> (Vec<u64>, Vec<(u64, u64)>) {
        let q = self.q as u64;
        let items = self.items();
        let mut item_weight = vec![0u64; items];
        let mut item_count = vec![0u64; items];
        let mut item_rank = vec![u64::MAX; items];
        for (i, &now) in current.iter().enumerate() {
            let it = self.item(i as u32);
            item_weight[it] += self.weights[i];
            item_count[it] += now;
            item_rank[it] = item_rank[it].min(self.rank[i]);
        }
        let item_shares = match self.spread {
            Spread::Free => targets::water_fill(&item_weight, q, None),
            Spread::Strict => {
                targets::water_fill(&item_weight, q, Some((self.q / self.window) as u64))
            }
            Spread::Runs => vec![Share::ratio(q, 1, items as u64); items],
        };
        let item_targets = targets::round(&item_shares, q, &item_count, &item_rank);
        if !self.by_zone {
            let bands = item_shares.iter().map(|s| (s.floor(), s.ceil())).collect();
            return (item_targets, bands);
        }
        let mut out = vec![0u64; self.ids.len()];
        let mut bands = vec![(0, 0); self.ids.len()];
        for z in 0..self.zones {
            let members: Vec<usize> = (0..self.ids.len())
                .filter(|&i| self.zone_of[i] == z)
                .collect();
            let shares: Vec<Share> = members
                .iter()
                .map(|&i| item_shares[z].scaled(self.weights[i], item_weight[z]))
                .collect();
            let cur: Vec<u64> = members.iter().map(|&i| current[i]).collect();
            let rank: Vec<u64> = members.iter().map(|&i| self.rank[i]).collect();
            let counts = targets::round(&shares, item_targets[z], &cur, &rank);
            for (k, &i) in members.iter().enumerate() {
                out[i] = counts[k];
                bands[i] = (shares[k].floor(), shares[k].ceil());
            }
        }
        (out, bands)
    }
}

/// A fixed 64-bit mix (splitmix64's finaliser): the seeded tie-break.
fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
