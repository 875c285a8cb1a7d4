//! How many partitions each node should own: exact proportional shares,
//! water-filled under the spread cap, then rounded so that every node and
//! every zone ends on the floor or the ceiling of its share.
//!
//! Shares are kept as exact fractions (`u128` numerator over denominator) so
//! that no float rounding can make two platforms disagree about a target.

use std::cmp::Ordering;

/// An exact, possibly fractional, number of partitions: `num / den`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Share {
    num: u128,
    den: u128,
}

impl Share {
    /// A whole number of partitions.
    pub(super) fn whole(n: u64) -> Self {
        Self {
            num: n.into(),
            den: 1,
        }
    }

    /// `n · part / whole` partitions.
    pub(super) fn ratio(n: u64, part: u64, whole: u64) -> Self {
        debug_assert!(whole > 0);
        Self {
            num: u128::from(n) * u128::from(part),
            den: u128::from(whole),
        }
    }

    /// This share split by weight: `self · part / whole`.
    pub(super) fn scaled(self, part: u64, whole: u64) -> Self {
        debug_assert!(whole > 0);
        Self {
            num: self.num * u128::from(part),
            den: self.den * u128::from(whole),
        }
    }

    /// The largest whole number not above the share.
    pub(super) fn floor(self) -> u64 {
        (self.num / self.den) as u64
    }

    /// The smallest whole number not below the share.
    pub(super) fn ceil(self) -> u64 {
        self.num.div_ceil(self.den) as u64
    }

    /// Compares the fractional parts of two shares.
    fn cmp_fraction(self, other: Self) -> Ordering {
        let a = (self.num % self.den) * other.den;
        let b = (other.num % other.den) * self.den;
        a.cmp(&b)
    }
}

/// Splits `total` partitions over items in proportion to `weights`, no item
/// above `cap` (water-filling: items whose proportional share exceeds the
/// cap get exactly the cap, and the rest is shared again among the others).
/// The caller guarantees the caps can hold `total`.
pub(super) fn water_fill(weights: &[u64], total: u64, cap: Option<u64>) -> Vec<Share> {
    let mut capped = vec![false; weights.len()];
    // Each round caps at least one more item or stops, so this ends.
    for _ in 0..=weights.len() {
        let free_weight: u64 = (0..weights.len())
            .filter(|&i| !capped[i])
            .map(|i| weights[i])
            .sum();
        let capped_count = capped.iter().filter(|&&c| c).count() as u64;
        let Some(cap) = cap else { break };
        let free_total = total - cap * capped_count;
        let mut changed = false;
        for i in 0..weights.len() {
            let over = u128::from(free_total) * u128::from(weights[i])
                > u128::from(cap) * u128::from(free_weight);
            if !capped[i] && over {
                capped[i] = true;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let capped_count = capped.iter().filter(|&&c| c).count() as u64;
    let free_total = total - cap.unwrap_or(0) * capped_count;
    let free_weight: u64 = (0..weights.len())
        .filter(|&i| !capped[i])
        .map(|i| weights[i])
        .sum();
    (0..weights.len())
        .map(|i| match (capped[i], cap) {
            (true, Some(cap)) => Share::whole(cap),
            _ if free_weight == 0 => Share::whole(0),
            _ => Share::ratio(free_total, weights[i], free_weight),
        })
        .collect()
}

/// Rounds shares summing to `total` into whole counts summing to `total`,
/// each the floor or the ceiling of its share. Items that already own the
/// ceiling keep it first (so rounding never moves a partition that need
/// not move), then larger fractions, then the seeded `rank`.
pub(super) fn round(shares: &[Share], total: u64, current: &[u64], rank: &[u64]) -> Vec<u64> {
    let mut counts: Vec<u64> = shares.iter().map(|s| s.floor()).collect();
    let floors: u64 = counts.iter().sum();
    debug_assert!(floors <= total);
    let mut order: Vec<usize> = (0..shares.len())
        .filter(|&i| shares[i].ceil() > shares[i].floor())
        .collect();
    order.sort_by(|&a, &b| {
        let keeps = |i: usize| current[i] >= shares[i].ceil();
        keeps(b)
            .cmp(&keeps(a))
            .then_with(|| shares[b].cmp_fraction(shares[a]))
            .then_with(|| rank[a].cmp(&rank[b]))
    });
    let extra = (total - floors) as usize;
    debug_assert!(extra <= order.len());
    for &i in order.iter().take(extra) {
        counts[i] += 1;
    }
    counts
}
