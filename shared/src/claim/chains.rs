//! Hand-over chains: how a node below its target gets one more partition
//! while every other node keeps its count and the spread rule keeps
//! holding.
//!
//! A chain is `taker` taking partition `p1` from `a1`, `a1` taking `p2`
//! from `a2`, and so on, until a step takes a hole or a partition of a node
//! above its target. Only the two ends change count. Each step is checked
//! against the table as the earlier steps left it, so the table keeps the
//! rule after every step, and the whole chain is undone if it dead-ends.
//!
//! A chain is priced by what it changes against the previous owners: a
//! step onto a partition that still has its previous owner costs one move,
//! a step onto a partition that has moved already (a hole, or an earlier
//! refill) costs nothing, and a step that gives a partition back to its
//! previous owner earns one back. The search is depth first, each node
//! expanded at most once per search (as in Kuhn's augmenting paths), and
//! is run with a rising move budget so the cheapest chain it can find wins.

use super::rebalance::Start;
use super::rules::HOLE;
use super::{Plan, Spread};

/// The previous owner of a partition whose owner has left.
pub(super) const GONE: u32 = u32::MAX - 1;

/// The table being bent, with what the chain search needs beside it.
pub(super) struct Chains<'a> {
    /// The claimants and the rule.
    pub plan: &'a Plan,
    /// Previous owner of each partition (`GONE` when it left).
    pub prev: Vec<u32>,
    /// Current owner of each partition (`HOLE` when none yet).
    pub owners: Vec<u32>,
    /// Partitions each node owns now.
    pub counts: Vec<u64>,
    /// Partitions each node should own.
    pub targets: Vec<u64>,
}

impl Chains<'_> {
    /// Change in moves if `x` took partition `p` now.
    fn delta(&self, p: usize, x: u32) -> i64 {
        i64::from(x != self.prev[p]) - i64::from(self.owners[p] != self.prev[p])
    }

    /// True if taking `p` ends a chain: it is a hole, or its owner has more
    /// than its target.
    fn ends(&self, p: usize) -> bool {
        let y = self.owners[p];
        y == HOLE || self.counts[y as usize] > self.targets[y as usize]
    }

    /// Nodes below their target, furthest behind first (then by rank).
    pub fn short(&self) -> Vec<usize> {
        let n = self.plan.ids.len();
        let mut short: Vec<usize> = (0..n)
            .filter(|&i| self.counts[i] < self.targets[i])
            .collect();
        short.sort_by_key(|&i| {
            (
                self.counts[i] as i64 - self.targets[i] as i64,
                self.plan.rank[i],
            )
        });
        short
    }

    /// Gives `taker` one more partition by the cheapest chain within
    /// `budget` moves that the search finds; applies it and returns true,
    /// or leaves the table as it was and returns false.
    pub fn grow(&mut self, taker: usize, budget: i64) -> bool {
        let mut seen = vec![false; self.plan.ids.len()];
        seen[taker] = true;
        // With no budget left a step can only land on a partition that has
        // moved already; partitions the chain moves are its own nodes'.
        let moved: Vec<usize> = (0..self.plan.q)
            .filter(|&p| self.owners[p] != self.prev[p])
            .collect();
        self.step(taker as u32, budget, &mut seen, &moved)
    }

    /// One step of the chain: `x` needs a partition and may spend `budget`.
    fn step(&mut self, x: u32, budget: i64, seen: &mut [bool], moved: &[usize]) -> bool {
        let all: Vec<usize>;
        let scan = if budget > 0 {
            all = (0..self.plan.q).collect();
            &all
        } else {
            moved
        };
        let mut cands: Vec<(bool, i64, usize)> = Vec::new();
        for &p in scan {
            let y = self.owners[p];
            if y == x || (y != HOLE && seen[y as usize]) {
                continue;
            }
            let d = self.delta(p, x);
            if d <= budget {
                cands.push((!self.ends(p), d, p));
            }
        }
        // Chain ends first, then the cheapest steps; ties by partition.
        cands.sort_unstable();
        for (through, d, p) in cands {
            let y = self.owners[p];
            if through && seen[y as usize] {
                continue;
            }
            self.owners[p] = x;
            if !self.plan.fits_around(&self.owners, p) {
                self.owners[p] = y;
                if self.eject(x, p, budget - d, seen, moved) {
                    return true;
                }
                continue;
            }
            self.counts[x as usize] += 1;
            if y != HOLE {
                self.counts[y as usize] -= 1;
            }
            if !through {
                return true;
            }
            seen[y as usize] = true;
            if self.step(y, budget - d, seen, moved) {
                return true;
            }
            self.counts[x as usize] -= 1;
            self.counts[y as usize] += 1;
            self.owners[p] = y;
        }
        false
    }

    /// `x` takes `p` although one partition `p2` near it holds another
    /// node `z` of `x`'s item: `p`'s owner `y` (or the hole) moves onto
    /// `p2`, and `z` is the one that needs a partition next. This shifts a
    /// node along the ring where every free spot is too near one of its
    /// own, which plain steps cannot do. Strict rule only.
    fn eject(&mut self, x: u32, p: usize, budget: i64, seen: &mut [bool], moved: &[usize]) -> bool {
        let plan = self.plan;
        if plan.spread != Spread::Strict {
            return false;
        }
        let (q, w) = (plan.q, plan.window);
        let item = plan.item(x);
        let mut clash = (1..w)
            .flat_map(|d| [(p + d) % q, (p + q - d) % q])
            .filter(|&p2| {
                let o = self.owners[p2];
                o != HOLE && plan.item(o) == item
            });
        let (Some(p2), None) = (clash.next(), clash.next()) else {
            return false;
        };
        let (y, z) = (self.owners[p], self.owners[p2]);
        if z == x || seen[z as usize] {
            return false;
        }
        let cost = self.delta(p, x);
        self.owners[p] = x;
        let cost = cost + self.delta(p2, y);
        if cost > budget {
            self.owners[p] = y;
            return false;
        }
        self.owners[p2] = y;
        if plan.fits_around(&self.owners, p) && plan.fits_around(&self.owners, p2) {
            self.counts[x as usize] += 1;
            if self.counts[z as usize] > self.targets[z as usize] {
                self.counts[z as usize] -= 1;
                return true;
            }
            self.counts[z as usize] -= 1;
            seen[z as usize] = true;
            if self.step(z, budget - cost, seen, moved) {
                return true;
            }
            self.counts[x as usize] -= 1;
            self.counts[z as usize] += 1;
        }
        self.owners[p] = y;
        self.owners[p2] = z;
        false
    }
}

/// The most moves a single chain may cost beyond the partitions it must
/// move; a hand-over from a node above its target costs one.
const EXTRA_MAX: i64 = 3;

/// Takes `start` to the targets by chains, cheapest first, or `None` if no
/// chain within [`EXTRA_MAX`] reaches a short node's target.
pub(super) fn balance(plan: &Plan, start: Start, previous: &[Option<u32>]) -> Option<Vec<u32>> {
    let (q, nodes) = (plan.q, plan.ids.len());
    let Start {
        owners,
        counts,
        targets,
        bands,
    } = start;
    let mut c = Chains {
        plan,
        prev: previous.iter().map(|o| o.unwrap_or(GONE)).collect(),
        owners,
        counts,
        targets,
    };
    // Each round raises a short node by one, so at most `q` are made.
    for _ in 0..=q {
        let short = c.short();
        if short.is_empty() {
            break;
        }
        let grown = (0..=EXTRA_MAX).any(|budget| {
            short.iter().any(|&t| c.grow(t, budget)) || trade(&mut c, &bands, &short, budget)
        });
        if !grown {
            return None;
        }
    }
    let balanced = (0..nodes).all(|i| c.counts[i] == c.targets[i]);
    (balanced && plan.fits(&c.owners)).then_some(c.owners)
}

/// A short node `j` that was only rounded up hands that unit of target to
/// a node `i` of the same item (zone, by zone) still below its ceiling, if
/// `i` can then grow within `budget`: both stay within their bands.
fn trade(c: &mut Chains, bands: &[(u64, u64)], short: &[usize], budget: i64) -> bool {
    let plan = c.plan;
    for &j in short {
        if c.targets[j] <= bands[j].0 {
            continue;
        }
        for (i, band) in bands.iter().enumerate() {
            let same = !plan.by_zone || plan.zone_of[i] == plan.zone_of[j];
            if i == j || !same || c.targets[i] >= band.1 || c.counts[i] < c.targets[i] {
                continue;
            }
            c.targets[j] -= 1;
            c.targets[i] += 1;
            if c.grow(i, budget) {
                return true;
            }
            c.targets[j] += 1;
            c.targets[i] -= 1;
        }
    }
    false
}
