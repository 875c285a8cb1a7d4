//! A layout from scratch: for a new cluster, and the fallback when the
//! previous owners cannot be bent into the new targets one hand-over at a
//! time.
//!
//! The ring is first laid out in *slots*, each given an item (a zone, or a
//! node when spreading by node); then each item's slots go to its nodes,
//! and under [`Spread::Runs`] some slots stretch over several adjacent
//! partitions of one node.
//!
//! Strict slots are one partition each, written column by column: item
//! copies, largest count first, are dealt into `r = Q / w` blocks (copy
//! `j` to block `j % r` at row `j / r`) and the blocks are read in order.
//! Every block is at least `w` long and holds an item at most once; copies
//! of one item sit in the same row of consecutive blocks, or one row lower
//! after a wrap with a whole block between them, so any two are at least
//! `w` apart. Items with `r` copies come first and fill whole rows, which
//! is what keeps that last case from arising for them.

use super::{Plan, Spread};

/// A fresh owner table (node indices) meeting the plan's rule and targets.
pub(super) fn fresh(plan: &Plan) -> Vec<u32> {
    let nodes = plan.ids.len();
    let (targets, _) = plan.targets(&vec![0; nodes]);
    let items = plan.items();
    let mut item_count = vec![0u64; items];
    let mut item_rank = vec![u64::MAX; items];
    for (i, (&target, &rank)) in targets.iter().zip(&plan.rank).enumerate() {
        let it = plan.item(i as u32);
        item_count[it] += target;
        item_rank[it] = item_rank[it].min(rank);
    }
    let slots = match plan.spread {
        Spread::Free | Spread::Strict => {
            let blocks = match plan.spread {
                Spread::Strict => plan.q / plan.window,
                _ => item_count.iter().copied().max().unwrap_or(1).max(1) as usize,
            };
            columns(&item_count, &item_rank, blocks)
        }
        Spread::Runs => {
            let mut order: Vec<usize> = (0..items).collect();
            order.sort_by_key(|&i| item_rank[i]);
            let rounds = plan.q / plan.window;
            (0..rounds).flat_map(|_| order.iter().copied()).collect()
        }
    };
    // Each item's slots, in ring order, go to its nodes.
    let mut slot_node = vec![0u32; slots.len()];
    let mut slot_len = vec![1u64; slots.len()];
    for it in 0..items {
        let mine: Vec<usize> = (0..slots.len()).filter(|&s| slots[s] == it).collect();
        let members: Vec<usize> = (0..nodes).filter(|&i| plan.item(i as u32) == it).collect();
        let want: Vec<u64> = members.iter().map(|&i| targets[i]).collect();
        let picks = smooth_round_robin(&slot_shares(&want, mine.len()), mine.len());
        let mut have = vec![0u64; members.len()];
        for (k, &s) in mine.iter().enumerate() {
            slot_node[s] = members[picks[k]] as u32;
            have[picks[k]] += 1;
        }
        // Runs: stretch slots until every node has its target.
        let mut extra: u64 = want.iter().sum::<u64>() - mine.len() as u64;
        let mut k = 0;
        while extra > 0 && !mine.is_empty() {
            let s = mine[k % mine.len()];
            let m = members.iter().position(|&i| i as u32 == slot_node[s]);
            let short = m.is_some_and(|m| have[m] < want[m]);
            let stuck = k >= mine.len() * 2;
            if short || stuck {
                slot_len[s] += 1;
                if let Some(m) = m {
                    have[m] += 1;
                }
                extra -= 1;
            }
            k += 1;
        }
    }
    let mut owners = Vec::with_capacity(plan.q);
    for (s, &node) in slot_node.iter().enumerate() {
        for _ in 0..slot_len[s] {
            owners.push(node);
        }
    }
    debug_assert_eq!(owners.len(), plan.q);
    owners
}

/// Deals item copies column by column into `blocks` blocks (see the module
/// doc); returns the item of each partition.
fn columns(count: &[u64], rank: &[u64], blocks: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..count.len()).collect();
    order.sort_by(|&a, &b| count[b].cmp(&count[a]).then(rank[a].cmp(&rank[b])));
    let copies: Vec<usize> = order
        .iter()
        .flat_map(|&i| std::iter::repeat_n(i, count[i] as usize))
        .collect();
    let mut grid: Vec<Vec<usize>> = vec![Vec::new(); blocks];
    for (j, &item) in copies.iter().enumerate() {
        grid[j % blocks].push(item);
    }
    grid.concat()
}

/// How many of `slots` slots each member gets when member `m` wants
/// `want[m]` partitions: every member that wants any gets a slot first
/// (so that it can stretch it into a run), then slots follow the largest
/// remaining want. Never more than a member wants.
fn slot_shares(want: &[u64], slots: usize) -> Vec<u64> {
    let mut got = vec![0u64; want.len()];
    let mut left = slots;
    let mut order: Vec<usize> = (0..want.len()).collect();
    order.sort_by(|&a, &b| want[b].cmp(&want[a]).then(a.cmp(&b)));
    for &m in &order {
        if left > 0 && want[m] > 0 {
            got[m] = 1;
            left -= 1;
        }
    }
    let room: Vec<u64> = (0..want.len()).map(|m| want[m] - got[m]).collect();
    for m in smooth_round_robin(&room, left) {
        got[m] += 1;
    }
    got
}

/// Which of `weights.len()` members takes each of `slots` turns, each in
/// proportion to its weight and evenly spread (smooth weighted round
/// robin: the member furthest behind its share goes next).
fn smooth_round_robin(weights: &[u64], slots: usize) -> Vec<usize> {
    let total: i128 = weights.iter().map(|&w| i128::from(w)).sum();
    let mut credit = vec![0i128; weights.len()];
    let mut out = Vec::with_capacity(slots);
    for _ in 0..slots {
        let mut best = 0;
        for m in 0..weights.len() {
            credit[m] += i128::from(weights[m]);
            if credit[m] > credit[best] {
                best = m;
            }
        }
        credit[best] -= total;
        out.push(best);
    }
    out
}

/// The fresh layout turned and relabelled to agree with `previous` as much
/// as it can: the last resort when no hand-over chains reach the targets.
///
/// Turning the ring, and swapping two nodes with the same target (and the
/// same zone, by zone), keep the rule and every count, so each of the `Q`
/// turns is tried with the relabelling that greedily pairs the nodes that
/// share the most partitions.
pub(super) fn aligned(plan: &Plan, previous: &[Option<u32>]) -> Vec<u32> {
    let fresh = fresh(plan);
    let q = plan.q;
    let mut count = vec![0u64; plan.ids.len()];
    for &o in &fresh {
        count[o as usize] += 1;
    }
    let class = |i: u32| {
        (
            count[i as usize],
            plan.by_zone.then(|| plan.zone_of[i as usize]),
        )
    };
    let mut best: Option<(usize, Vec<u32>)> = None;
    let mut pairs: Vec<(u32, u32)> = Vec::with_capacity(q);
    for turn in 0..q {
        pairs.clear();
        for (p, prev) in previous.iter().enumerate() {
            let a = fresh[(p + turn) % q];
            match prev {
                Some(b) if class(a) == class(*b) => pairs.push((a, *b)),
                _ => {}
            }
        }
        pairs.sort_unstable();
        // Runs of equal pairs: (overlap, fresh node, previous node).
        let mut runs: Vec<(usize, u32, u32)> = Vec::new();
        for &(a, b) in &pairs {
            match runs.last_mut() {
                Some((n, x, y)) if (*x, *y) == (a, b) => *n += 1,
                _ => runs.push((1, a, b)),
            }
        }
        runs.sort_by(|x, y| y.0.cmp(&x.0).then((x.1, x.2).cmp(&(y.1, y.2))));
        let mut label: Vec<Option<u32>> = vec![None; plan.ids.len()];
        let mut used = vec![false; plan.ids.len()];
        let mut kept = 0;
        for (n, a, b) in runs {
            if label[a as usize].is_none() && !used[b as usize] {
                label[a as usize] = Some(b);
                used[b as usize] = true;
                kept += n;
            }
        }
        if best.as_ref().is_some_and(|(k, _)| *k >= kept) {
            continue;
        }
        // Unpaired fresh nodes take the unused nodes of their class.
        for a in 0..plan.ids.len() as u32 {
            if label[a as usize].is_none() {
                let b = (0..plan.ids.len() as u32)
                    .find(|&b| !used[b as usize] && class(a) == class(b))
                    .unwrap_or(a);
                label[a as usize] = Some(b);
                used[b as usize] = true;
            }
        }
        let owners = (0..q)
            .map(|p| label[fresh[(p + turn) % q] as usize].unwrap_or(0))
            .collect();
        best = Some((kept, owners));
    }
    best.map(|(_, o)| o).unwrap_or(fresh)
}
