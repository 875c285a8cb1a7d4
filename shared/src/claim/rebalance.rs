//! Bending the previous owner table into the new targets, moving as few
//! partitions as the searches can find.
//!
//! 1. Owners no longer present become holes; so does every partition whose
//!    owner breaks the spread rule (a rule can tighten when nodes or zones
//!    are added, or `target_n` grows).
//! 2. Holes go to nodes below their target by bipartite matching, judged
//!    against the owners that stay; holes that no such node fits go, by a
//!    second matching, to nodes still below the ceiling of their share,
//!    and the targets are rounded again around the counts that gives
//!    (a removal then moves only the departed node's partitions more
//!    often: 699 against 673 of 800 random removals).
//! 3. Two searches then take the table the rest of the way, each from the
//!    same start, and the one that moves fewer partitions wins:
//!    - [`super::handover`]: greedy refills and single hand-overs from
//!      nodes above their target, with two-step chains when none fits;
//!    - [`super::chains`]: hand-over chains of any length priced by the
//!      moves they add, which can also shift a node along the ring.
//!
//!    Each search finds tables the other misses: hand-overs reach the
//!    targets in layouts where a priced chain search runs out of budget,
//!    and chains untangle layouts tight by zone where single hand-overs
//!    have nowhere to go.
//!
//! It gives up (and the caller falls back to [`super::layout::aligned`])
//! only when neither search reaches every target.

use super::rules::HOLE;
use super::Plan;

/// Where both searches start: the previous owners with holes refilled as
/// far as matching goes, and the targets.
#[derive(Clone)]
pub(super) struct Start {
    /// Owner of each partition (`HOLE` when none yet).
    pub owners: Vec<u32>,
    /// Partitions each node owns now.
    pub counts: Vec<u64>,
    /// Partitions each node should own.
    pub targets: Vec<u64>,
    /// Each node's band: the floor and ceiling of its exact share.
    pub bands: Vec<(u64, u64)>,
}

/// The previous owners bent into the plan's targets, or `None` if neither
/// search gets there.
pub(super) fn rebalance(plan: &Plan, previous: &[Option<u32>]) -> Option<Vec<u32>> {
    let start = start(plan, previous);
    let moves = |owners: &Vec<u32>| {
        owners
            .iter()
            .zip(previous)
            .filter(|(o, p)| Some(**o) != **p)
            .count()
    };
    let a = super::handover::balance(plan, start.clone());
    let b = super::chains::balance(plan, start, previous);
    match (a, b) {
        (Some(a), Some(b)) => Some(if moves(&b) < moves(&a) { b } else { a }),
        (a, b) => a.or(b),
    }
}

/// Steps 1 and 2 of the module doc.
fn start(plan: &Plan, previous: &[Option<u32>]) -> Start {
    let q = plan.q;
    let mut owners: Vec<u32> = previous.iter().map(|o| o.unwrap_or(HOLE)).collect();
    for start in 0..q {
        // Each clearing makes one more hole, so this ends within `q` rounds.
        while let Err(p) = plan.check_from(&owners, start) {
            owners[p] = HOLE;
        }
    }
    let mut counts = vec![0u64; plan.ids.len()];
    for &o in owners.iter().filter(|&&o| o != HOLE) {
        counts[o as usize] += 1;
    }
    let (targets, bands) = plan.targets(&counts);
    matched_refill(plan, &mut owners, &mut counts, &targets);
    let (targets, bands) = if owners.contains(&HOLE) {
        // Holes no node short of its target fits: a node may take one up
        // to the ceiling of its share instead, and the targets are rounded
        // again around the counts that gives.
        let ceilings: Vec<u64> = bands.iter().map(|b| b.1).collect();
        matched_refill(plan, &mut owners, &mut counts, &ceilings);
        plan.targets(&counts)
    } else {
        (targets, bands)
    };
    Start {
        owners,
        counts,
        targets,
        bands,
    }
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
