//! The claim's laws, checked against an independent statement of them
//! (the module doc's guarantees, recomputed here from scratch).

use super::*;
use crate::ring::PreferenceList;
use proptest::prelude::*;

fn node(id: u64, zone: usize, weight: u32) -> Claimant {
    Claimant {
        id: NodeId(id),
        zone: format!("z{zone}"),
        weight,
    }
}

fn count(owners: &[NodeId], id: NodeId) -> usize {
    owners.iter().filter(|o| **o == id).count()
}

/// Partitions whose owner differs.
fn moved(a: &[NodeId], b: &[NodeId]) -> usize {
    a.iter().zip(b).filter(|(x, y)| x != y).count()
}

/// Partitions the nodes had to gain: no table with these counts can differ
/// from `before` in fewer partitions.
fn gains(before: &[NodeId], after: &[NodeId], cs: &[Claimant]) -> usize {
    cs.iter()
        .map(|c| count(after, c.id).saturating_sub(count(before, c.id)))
        .sum()
}

/// Which rule the module doc promises for a cluster.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum Promise {
    Free,
    Strict { by_zone: bool },
    Runs { by_zone: bool },
}

fn promise(cs: &[Claimant], q: usize, n: usize) -> (Promise, usize) {
    let w = n.max(1).min(q);
    let mut zones: Vec<&str> = cs.iter().map(|c| c.zone.as_str()).collect();
    zones.sort_unstable();
    zones.dedup();
    let by_zone = w > 1 && zones.len() >= w;
    let items = if by_zone { zones.len() } else { cs.len() };
    let p = if w <= 1 || (!by_zone && cs.len() <= w) {
        Promise::Free
    } else if items * (q / w) >= q {
        Promise::Strict { by_zone }
    } else {
        Promise::Runs { by_zone }
    };
    (p, w)
}

fn zone_of(cs: &[Claimant], id: NodeId) -> &str {
    &cs.iter().find(|c| c.id == id).unwrap().zone
}

/// Every owner present; the spread rule the module doc promises.
fn check_spread(cs: &[Claimant], q: usize, n: usize, owners: &[NodeId]) -> Result<(), String> {
    if owners.len() != q || !owners.iter().all(|o| cs.iter().any(|c| c.id == *o)) {
        return Err("owner table wrong size or names a stranger".into());
    }
    let (p, w) = promise(cs, q, n);
    let item = |by_zone: bool, id: NodeId| -> String {
        if by_zone {
            zone_of(cs, id).to_string()
        } else {
            id.to_string()
        }
    };
    if let Promise::Strict { by_zone } | Promise::Runs { by_zone } = p {
        if by_zone {
            // The practical law: every preference list's home spans w zones.
            for start in 0..q {
                let list = PreferenceList::walk(owners, start as u32, w);
                let mut zs: Vec<&str> = list.home().iter().map(|id| zone_of(cs, *id)).collect();
                zs.sort_unstable();
                zs.dedup();
                if zs.len() != w {
                    return Err(format!("partition {start}: home spans {} zones", zs.len()));
                }
            }
        }
        // Strict: raw windows; runs: windows once runs of a node collapse.
        let seq: Vec<NodeId> = if matches!(p, Promise::Strict { .. }) {
            owners.to_vec()
        } else {
            let mut s: Vec<NodeId> = Vec::new();
            for &o in owners {
                if s.last() != Some(&o) {
                    s.push(o);
                }
            }
            while s.len() > 1 && s.first() == s.last() {
                s.pop();
            }
            s
        };
        for start in 0..seq.len() {
            let mut seen: Vec<String> = (0..w)
                .map(|d| item(by_zone, seq[(start + d) % seq.len()]))
                .collect();
            seen.sort();
            seen.dedup();
            if seen.len() != w {
                return Err(format!("{p:?}: window at {start} repeats"));
            }
        }
    }
    Ok(())
}

/// Capped proportional targets, water-filled in floating point.
fn fill(weights: &[f64], total: f64, cap: f64) -> Vec<f64> {
    let mut capped = vec![false; weights.len()];
    loop {
        let free_w: f64 = (0..weights.len())
            .filter(|&i| !capped[i])
            .map(|i| weights[i])
            .sum();
        let free_t = total - cap * capped.iter().filter(|&&c| c).count() as f64;
        let mut changed = false;
        for i in 0..weights.len() {
            if !capped[i] && free_t * weights[i] / free_w > cap {
                capped[i] = true;
                changed = true;
            }
        }
        if !changed {
            return (0..weights.len())
                .map(|i| {
                    if capped[i] {
                        cap
                    } else {
                        free_t * weights[i] / free_w
                    }
                })
                .collect();
        }
    }
}

/// Every node and every zone within ±1 (exclusive) of its capped target.
fn check_weights(cs: &[Claimant], q: usize, n: usize, owners: &[NodeId]) -> Result<(), String> {
    let (p, w) = promise(cs, q, n);
    let mut zones: Vec<&str> = cs.iter().map(|c| c.zone.as_str()).collect();
    zones.sort_unstable();
    zones.dedup();
    let by_zone = matches!(
        p,
        Promise::Strict { by_zone: true } | Promise::Runs { by_zone: true }
    );
    let items: Vec<Vec<&Claimant>> = if by_zone {
        zones
            .iter()
            .map(|z| cs.iter().filter(|c| c.zone == *z).collect())
            .collect()
    } else {
        cs.iter().map(|c| vec![c]).collect()
    };
    let item_w: Vec<f64> = items
        .iter()
        .map(|m| m.iter().map(|c| c.weight as f64).sum())
        .collect();
    let item_t = match p {
        Promise::Free => fill(&item_w, q as f64, f64::INFINITY),
        Promise::Strict { .. } => fill(&item_w, q as f64, (q / w) as f64),
        Promise::Runs { .. } => vec![q as f64 / items.len() as f64; items.len()],
    };
    for (k, members) in items.iter().enumerate() {
        let got: usize = members.iter().map(|c| count(owners, c.id)).sum();
        if (got as f64 - item_t[k]).abs() >= 1.0 - 1e-9 && got as f64 != item_t[k] {
            return Err(format!(
                "item {k}: {got} partitions, target {:.3}",
                item_t[k]
            ));
        }
        // Run form: a zone with more nodes than its `Q / w` slots must
        // stretch a slot of a node that wanted one partition.
        let slots = q / w;
        let stretched = match p {
            Promise::Runs { by_zone: true } if members.len() > slots => got.saturating_sub(slots),
            _ => 0,
        };
        for c in members {
            let t = item_t[k] * c.weight as f64 / item_w[k];
            let got = count(owners, c.id) as f64;
            if got - t >= 1.0 + stretched as f64 - 1e-9 || t - got >= 1.0 - 1e-9 {
                return Err(format!("node {}: {got} partitions, target {t:.3}", c.id));
            }
        }
    }
    Ok(())
}

fn check(cs: &[Claimant], q: u32, n: usize, owners: &[NodeId]) -> Result<(), TestCaseError> {
    check_spread(cs, q as usize, n, owners).map_err(TestCaseError::fail)?;
    check_weights(cs, q as usize, n, owners).map_err(TestCaseError::fail)
}

/// A random cluster: 1 to 64 nodes, weights 1 to 8 (or all 1), 1 to 5
/// zones; Q from 64 to 1024; N from 1 to 5.
fn cluster() -> impl Strategy<Value = (Vec<Claimant>, u32, usize, usize)> {
    (1usize..=64, 1usize..=5, any::<bool>(), 0u32..5, 1usize..=5).prop_flat_map(
        |(k, zones, equal, bits, n)| {
            let weight = if equal { 1u32..=1 } else { 1u32..=8 };
            (
                prop::collection::vec((0..zones, weight), k),
                Just(64u32 << bits),
                Just(n),
                Just(zones),
            )
                .prop_map(|(spec, q, n, zones)| {
                    let cs = spec
                        .iter()
                        .enumerate()
                        .map(|(i, &(z, w))| node(0x1000 + 977 * i as u64, z, w))
                        .collect();
                    (cs, q, n, zones)
                })
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn a_fresh_claim_is_spread_and_weighted((cs, q, n, _) in cluster()) {
        let owners = claim(&cs, q, n, None);
        check(&cs, q, n, &owners)?;
        prop_assert_eq!(&owners, &claim(&cs, q, n, None));
    }

    #[test]
    fn adding_a_node_moves_about_its_share(
        (cs, q, n, zones) in cluster(), z in 0usize..5, w in 1u32..=8,
    ) {
        let before = claim(&cs, q, n, None);
        let equal = cs.iter().all(|c| c.weight == 1);
        let mut more = cs.clone();
        more.push(node(7, z % zones, if equal { 1 } else { w }));
        let after = claim(&more, q, n, Some(&before));
        check(&more, q, n, &after)?;
        let (was, _) = promise(&cs, q as usize, n);
        let (now, _) = promise(&more, q as usize, n);
        let by_node = matches!(now, Promise::Free | Promise::Strict { by_zone: false });
        if was == now && by_node && equal {
            // Every moved partition went to a node that had to grow (the
            // newcomer, or one rounded up to its new ceiling).
            let m = moved(&before, &after);
            prop_assert_eq!(m, gains(&before, &after, &more));
            prop_assert!(m as f64 <= 1.25 * q as f64 / (cs.len() + 1) as f64);
        }
    }

    #[test]
    fn removing_a_node_moves_only_its_partitions(
        (cs, q, n, _) in cluster(), pick in any::<prop::sample::Index>(),
    ) {
        prop_assume!(cs.len() > 1);
        let before = claim(&cs, q, n, None);
        let gone = pick.index(cs.len());
        let mut fewer = cs.clone();
        let left = fewer.remove(gone);
        let after = claim(&fewer, q, n, Some(&before));
        check(&fewer, q, n, &after)?;
        let (was, _) = promise(&cs, q as usize, n);
        let (now, w) = promise(&fewer, q as usize, n);
        let equal = cs.iter().all(|c| c.weight == 1);
        let by_node = matches!(now, Promise::Free | Promise::Strict { by_zone: false });
        // With fewer than 2w nodes left, a freed partition's 2(w - 1)
        // neighbours can hold every node that could take it.
        let room = fewer.len() >= 2 * w;
        if was == now && by_node && equal && room {
            prop_assert_eq!(moved(&before, &after), count(&before, left.id));
        }
    }

    #[test]
    fn reweighting_moves_what_the_counts_require(
        (cs, q, n, _) in cluster(), pick in any::<prop::sample::Index>(), w in 1u32..=8,
    ) {
        let before = claim(&cs, q, n, None);
        let mut changed = cs.clone();
        changed[pick.index(cs.len())].weight = w;
        let after = claim(&changed, q, n, Some(&before));
        check(&changed, q, n, &after)?;
        let (now, _) = promise(&changed, q as usize, n);
        if matches!(now, Promise::Free) {
            prop_assert_eq!(moved(&before, &after), gains(&before, &after, &changed));
        }
    }
}
