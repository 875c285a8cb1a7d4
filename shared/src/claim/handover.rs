//! The hand-over search: holes left after matching go greedily to nodes
//! that fit (short ones first), then nodes above their target hand single
//! partitions to nodes below it, each hand-over kept only if the spread
//! rule still holds; when no single one fits, a two-step chain (a third
//! node moves onto the donor's partition and frees one where the short
//! node fits).
//!
//! Refills move only partitions that must move; hand-overs move one per
//! unit a node must grow, two per chain.

use super::rebalance::Start;
use super::rules::HOLE;
use super::Plan;

/// Takes `start` to the targets, or `None` if a hole or a short node has
/// nowhere it fits.
pub(super) fn balance(plan: &Plan, start: Start) -> Option<Vec<u32>> {
    let q = plan.q;
    let nodes = plan.ids.len();
    let Start {
        mut owners,
        mut counts,
        mut targets,
        bands,
    } = start;
    let behind = |targets: &[u64], counts: &[u64], i: usize| targets[i] as i64 - counts[i] as i64;

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
