//! Key choice for YCSB-style workloads: uniform, or zipfian with the hot
//! keys scattered over the key space.
//!
//! The zipfian generator is the rejection-free method of Gray et al.,
//! "Quickly Generating Billion-Record Synthetic Databases" (SIGMOD 1994),
//! the one YCSB uses; ranks are then scrambled with a hash, as YCSB's
//! scrambled zipfian does, so popular keys do not share partitions.

use rand::Rng;

/// How keys are drawn.
#[derive(Clone, Debug)]
pub enum KeyChooser {
    /// Every record equally likely.
    Uniform {
        /// Record count.
        records: u64,
    },
    /// Zipfian with parameter `theta` (YCSB uses 0.99).
    Zipfian(Zipfian),
}

impl KeyChooser {
    /// A uniform chooser over `records`.
    pub fn uniform(records: u64) -> Self {
        Self::Uniform {
            records: records.max(1),
        }
    }

    /// A zipfian chooser over `records` with `theta` in (0, 1).
    pub fn zipfian(records: u64, theta: f64) -> Self {
        Self::Zipfian(Zipfian::new(records.max(2), theta))
    }

    /// The next record number, in `0..records`.
    pub fn next(&self, rng: &mut impl Rng) -> u64 {
        match self {
            Self::Uniform { records } => rng.gen_range(0..*records),
            Self::Zipfian(z) => scramble(z.next_rank(rng), z.n),
        }
    }
}

/// The zipfian distribution's precomputed constants.
#[derive(Clone, Debug)]
pub struct Zipfian {
    n: u64,
    theta: f64,
    alpha: f64,
    zeta_n: f64,
    eta: f64,
}

fn zeta(n: u64, theta: f64) -> f64 {
    (1..=n).map(|i| 1.0 / (i as f64).powf(theta)).sum()
}

impl Zipfian {
    /// Constants for `n` items and parameter `theta`.
    pub fn new(n: u64, theta: f64) -> Self {
        let zeta_n = zeta(n, theta);
        let zeta_2 = zeta(2, theta);
        Self {
            n,
            theta,
            alpha: 1.0 / (1.0 - theta),
            zeta_n,
            eta: (1.0 - (2.0 / n as f64).powf(1.0 - theta)) / (1.0 - zeta_2 / zeta_n),
        }
    }

    /// A rank in `0..n`; rank 0 is the most popular.
    pub fn next_rank(&self, rng: &mut impl Rng) -> u64 {
        let u: f64 = rng.gen();
        let uz = u * self.zeta_n;
        if uz < 1.0 {
            return 0;
        }
        if uz < 1.0 + 0.5f64.powf(self.theta) {
            return 1;
        }
        let rank = (self.n as f64 * (self.eta * u - self.eta + 1.0).powf(self.alpha)) as u64;
        rank.min(self.n - 1)
    }
}

/// Spreads rank `r` over `0..n` (FNV-1a of the rank).
fn scramble(r: u64, n: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in r.to_le_bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h % n
}

/// The key of record `i`.
pub fn record_key(i: u64) -> Vec<u8> {
    format!("user{i:012}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn zipfian_ranks_are_skewed_towards_the_head() {
        let z = Zipfian::new(10_000, 0.99);
        let mut rng = StdRng::seed_from_u64(1);
        let mut counts = vec![0u32; 10_000];
        for _ in 0..200_000 {
            counts[z.next_rank(&mut rng) as usize] += 1;
        }
        // Rank 0 is the most drawn; the top 1% of ranks take a large share.
        assert!(counts[0] > counts[1] && counts[1] > counts[100]);
        let head: u32 = counts[..100].iter().sum();
        assert!(head > 200_000 / 3, "head share {head}");
        // Ratio of rank 1 to rank 2 frequencies ≈ 2^theta.
        let ratio = f64::from(counts[0]) / f64::from(counts[1]);
        assert!((1.6..2.4).contains(&ratio), "{ratio}");
    }

    #[test]
    fn choosers_stay_in_range() {
        let mut rng = StdRng::seed_from_u64(2);
        for chooser in [KeyChooser::uniform(37), KeyChooser::zipfian(37, 0.99)] {
            for _ in 0..10_000 {
                assert!(chooser.next(&mut rng) < 37);
            }
        }
    }
}
