//! Bending the previous owner table into the new targets one partition at
//! a time.
//!
//! 1. Owners no longer present become holes; so does every partition whose
//!    owner breaks the spread rule (a rule can tighten when nodes or zones
//!    are added, or `target_n` grows).
//! 2. Holes go to nodes below their target that fit there: first by
//!    bipartite matching, then one by one (swapping with an earlier refill,
//!    or trading a rounded-up unit between two nodes of one zone, so that
//!    the hole lands on a node that fits without an extra move).
//! 3. While a node is below its target, it takes one partition from a node
//!    above its own, the one with the largest surplus among the partitions
//!    where it fits; if none fits, a two-step chain (a third node moves onto
//!    the donor's partition and frees one where the short node fits).
//!
//! Steps 1 and 2 move only partitions that must move; step 3 moves one per
//! unit a node must grow, two per chain. It gives up (and the caller lays
//! the ring out afresh) when a hole or a short node has nowhere it fits.

use super::rules::HOLE;
use super::Plan;

/// The previous owners bent into the plan's targets, or `None` if single
/// hand-overs cannot get there.
pub(super) fn rebalance(plan: &Plan, previous: &[Option<u32>]) -> Option<Vec<u32>> {
    let q = plan.q;
    let nodes = plan.ids.len();
    let mut owners: Vec<u32> = previous.iter().map(|o| o.unwrap_or(HOLE)).collect();
    for start in 0..q {
        // Each clearing makes one more hole, so this ends within `q` rounds.
        while let Err(p) = plan.check_from(&owners, start) {
            owners[p] = HOLE;
        }
    }
    let mut counts = vec![0u64; nodes];
    for &o in owners.iter().filter(|&&o| o != HOLE) {
        counts[o as usize] += 1;
    }
    let (mut targets, bands) = plan.targets(&counts);
    let behind = |targets: &[u64], counts: &[u64], i: usize| targets[i] as i64 - counts[i] as i64;

    matched_refill(plan, &mut owners, &mut counts, &targets);
    let mut filled: Vec<usize> = Vec::new();
    for p in 0..q {
        if owners[p] != HOLE {
            continue;
        }
        let mut order: Vec<usize> = (0..nodes).collect();
        // Short nodes first; then nodes still below their ceiling, which
        // can take the hole by trading a rounded-up unit (below).
        let key = |i: usize| {
            let short = behind(&targets, &counts, i).max(0);
            (
                std::cmp::Reverse(short),
                counts[i] >= bands[i].1,
                plan.rank[i],
            )
        };
        order.sort_by_key(|&i| key(i));
        let fit = order.iter().copied().find(|&i| {
            owners[p] = i as u32;
            plan.fits_around(&owners, p)
        });
        let i = fit?;
        owners[p] = i as u32;
        let swap = (behind(&targets, &counts, i) <= 0)
            .then(|| {
                refill_swap(plan, &mut owners, &filled, p, |z| {
                    behind(&targets, &counts, z) > 0
                })
            })
            .flatten();
        match swap {
            Some((f, y, z)) => {
                owners[p] = y;
                owners[f] = z;
                counts[z as usize] += 1;
            }
            None => {
                // A short node (of the same zone, by zone) only rounded up
                // hands its extra unit to `i`, which takes the hole within
                // its own band: the same counts, one move fewer.
                let trade = (behind(&targets, &counts, i) <= 0 && targets[i] < bands[i].1)
                    .then(|| {
                        (0..nodes).find(|&j| {
                            // Zone totals are rounded first: trade within one.
                            let same = !plan.by_zone || plan.zone_of[j] == plan.zone_of[i];
                            same && targets[j] > bands[j].0 && counts[j] <= bands[j].0
                        })
                    })
                    .flatten();
                if let Some(j) = trade {
                    targets[j] -= 1;
                    targets[i] += 1;
                }
                counts[i] += 1;
            }
        }
        filled.push(p);
    }

    // Each hand-over raises a short node by one, so at most `q` are made.
    for _ in 0..=q {
        let mut short: Vec<usize> = (0..nodes)
            .filter(|&i| behind(&targets, &counts, i) > 0)
            .collect();
        if short.is_empty() {
            break;
        }
        short.sort_by(|&a, &b| {
            behind(&targets, &counts, b)
                .cmp(&behind(&targets, &counts, a))
                .then(plan.rank[a].cmp(&plan.rank[b]))
        });
        let mut moved = false;
        for &taker in &short {
            if let Some(p) = best_donation(plan, &mut owners, &counts, &targets, taker) {
                counts[owners[p] as usize] -= 1;
                owners[p] = taker as u32;
                counts[taker] += 1;
                moved = true;
                break;
            }
        }
        if !moved {
            let taker = short[0];
            let (p, via, p2) = chain_donation(plan, &mut owners, &counts, &targets, taker)?;
            counts[owners[p] as usize] -= 1;
            owners[p] = via;
            owners[p2] = taker as u32;
            counts[taker] += 1;
        }
    }
    let balanced = (0..nodes).all(|i| counts[i] == targets[i]);
    (balanced && plan.fits(&owners)).then_some(owners)
}

/// Gives holes to short nodes by bipartite matching (Kuhn's augmenting
/// paths, a node taking as many holes as it is short): greedy filling can
/// spend a short node on a hole another could have taken and leave a hole
/// only a full node fits. Holes are judged against the other owners alone;
/// a matched hole that clashes with another is left to the greedy pass.
fn matched_refill(plan: &Plan, owners: &mut [u32], counts: &mut [u64], targets: &[u64]) {
    let holes: Vec<usize> = (0..plan.q).filter(|&p| owners[p] == HOLE).collect();
    let short: Vec<usize> = (0..plan.ids.len())
        .filter(|&i| counts[i] < targets[i])
        .collect();
    let fits: Vec<Vec<usize>> = holes
        .iter()
        .map(|&p| {
            let fit = short
                .iter()
                .copied()
                .filter(|&i| {
                    owners[p] = i as u32;
                    plan.fits_around(owners, p)
                })
                .collect();
            owners[p] = HOLE;
            fit
        })
        .collect();
    let mut taken_by: Vec<Option<usize>> = vec![None; holes.len()];
    let mut load = vec![0u64; plan.ids.len()];
    for h in 0..holes.len() {
        let mut seen = vec![false; plan.ids.len()];
        augment(
            h,
            &fits,
            &mut taken_by,
            &mut load,
            &mut seen,
            counts,
            targets,
        );
    }
    for (h, &p) in holes.iter().enumerate() {
        if let Some(i) = taken_by[h] {
            owners[p] = i as u32;
            if plan.fits_around(owners, p) {
                counts[i] += 1;
            } else {
                owners[p] = HOLE;
            }
        }
    }
}

/// One augmenting-path search from hole `h` (see [`matched_refill`]).
fn augment(
    h: usize,
    fits: &[Vec<usize>],
    taken_by: &mut [Option<usize>],
    load: &mut [u64],
    seen: &mut [bool],
    counts: &[u64],
    targets: &[u64],
) -> bool {
    for &i in &fits[h] {
        if seen[i] {
            continue;
        }
        seen[i] = true;
        if counts[i] + load[i] < targets[i] {
            taken_by[h] = Some(i);
            load[i] += 1;
            return true;
        }
        let holders: Vec<usize> = (0..taken_by.len())
            .filter(|&o| taken_by[o] == Some(i))
            .collect();
        for o in holders {
            if augment(o, fits, taken_by, load, seen, counts, targets) {
                // `o` moved to another node; `i`'s load is unchanged.
                load[i] -= 1;
                taken_by[h] = Some(i);
                load[i] += 1;
                return true;
            }
        }
    }
    false
}

/// When only a node at its target fits on hole `p`: an earlier refilled
/// hole `f` whose node `y` fits on `p` instead, and a short node `z` that
/// fits on `f`. Both were holes, so this moves nothing more. Returns
/// `(f, y, z)`; `owners` is restored before returning.
fn refill_swap(
    plan: &Plan,
    owners: &mut [u32],
    filled: &[usize],
    p: usize,
    short: impl Fn(usize) -> bool,
) -> Option<(usize, u32, u32)> {
    let here = owners[p];
    for &f in filled {
        let y = owners[f];
        for z in (0..plan.ids.len() as u32).filter(|&z| short(z as usize)) {
            owners[p] = y;
            owners[f] = z;
            let fits = plan.fits_around(owners, p) && plan.fits_around(owners, f);
            owners[p] = here;
            owners[f] = y;
            if fits {
                return Some((f, y, z));
            }
        }
    }
    None
}

/// Two hand-overs when no single one fits: a node `via` that fits on a
/// donor's partition `p` moves there from its partition `p2`, where
/// `taker` fits. This lets a zone grow where every partition it could take
/// directly sits too close to one of its own. Returns `(p, via, p2)`.
fn chain_donation(
    plan: &Plan,
    owners: &mut [u32],
    counts: &[u64],
    targets: &[u64],
    taker: usize,
) -> Option<(usize, u32, usize)> {
    let q = plan.q;
    for p in 0..q {
        let donor = owners[p];
        if counts[donor as usize] <= targets[donor as usize] {
            continue;
        }
        for via in 0..plan.ids.len() as u32 {
            if via == donor || via as usize == taker {
                continue;
            }
            owners[p] = via;
            if plan.fits_around(owners, p) {
                let homes: Vec<usize> = (0..q).filter(|&p2| owners[p2] == via && p2 != p).collect();
                for p2 in homes {
                    owners[p2] = taker as u32;
                    let fits = plan.fits_around(owners, p2) && plan.fits_around(owners, p);
                    owners[p2] = via;
                    if fits {
                        owners[p] = donor;
                        return Some((p, via, p2));
                    }
                }
            }
            owners[p] = donor;
        }
    }
    None
}

/// The partition `taker` should take: owned by a node above its target,
/// where `taker` fits, from the donor with the largest surplus (then the
/// lowest partition). `owners` is restored before returning.
fn best_donation(
    plan: &Plan,
    owners: &mut [u32],
    counts: &[u64],
    targets: &[u64],
    taker: usize,
) -> Option<usize> {
    let mut best: Option<(u64, usize)> = None;
    for p in 0..plan.q {
        let donor = owners[p] as usize;
        if counts[donor] <= targets[donor] {
            continue;
        }
        let surplus = counts[donor] - targets[donor];
        if best.is_some_and(|(s, _)| s >= surplus) {
            continue;
        }
        owners[p] = taker as u32;
        let fits = plan.fits_around(owners, p);
        owners[p] = donor as u32;
        if fits {
            best = Some((surplus, p));
        }
    }
    best.map(|(_, p)| p)
}
