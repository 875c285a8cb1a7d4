//! The one source of randomness in a world: SplitMix64 from its seed.
//!
//! Written out (a dozen lines) rather than taken from `rand`: a world must
//! be the same world on every machine and every toolchain for as long as
//! its seed is quoted in a bug report, and `rand` documents that its
//! `StdRng` may change between releases. SplitMix64 is also cheap in the
//! debug builds `cargo test` runs, which matters at 10 000 worlds a run.

/// A seeded pseudo-random sequence (Steele, Lea and Flood's SplitMix64).
#[derive(Clone, Debug)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// The sequence of `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `lo..=hi` (`lo <= hi`). The modulo bias is at most
    /// `hi - lo` in 2^64: nothing a simulation can notice.
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        debug_assert!(lo <= hi);
        match (hi - lo).checked_add(1) {
            Some(span) => lo + self.next_u64() % span,
            None => self.next_u64(),
        }
    }

    /// An index below `len` (`len > 0`).
    pub fn index(&mut self, len: usize) -> usize {
        self.between(0, len as u64 - 1) as usize
    }

    /// True with probability `p` (0 never, 1 always).
    pub fn chance(&mut self, p: f64) -> bool {
        // 53 random bits make an exact double in [0, 1).
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    /// A share in `[0, max)`, or 0 in the worlds (chance `1 - p`) that do
    /// without this fault altogether: many worlds should be calm in one
    /// respect and harsh in another.
    pub fn share(&mut self, p: f64, max: f64) -> f64 {
        if self.chance(p) {
            (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * max
        } else {
            0.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_sequence_and_bounds_hold() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        for _ in 0..1_000 {
            assert_eq!(a.next_u64(), b.next_u64());
            let x = a.between(3, 9);
            assert!((3..=9).contains(&x));
            b.between(3, 9);
        }
        // SplitMix64's published first output for seed 0.
        assert_eq!(Rng::new(0).next_u64(), 0xe220_a839_7b1d_cdaf);
        assert!(!Rng::new(1).chance(0.0));
        assert!(Rng::new(1).chance(1.0));
        // The full range does not overflow.
        let _ = Rng::new(5).between(0, u64::MAX);
    }
}
