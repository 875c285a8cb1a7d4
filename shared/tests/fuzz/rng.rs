//! The seeded generator every case draws from, and the mutations that turn
//! a well-formed encoding into the near-misses decoders get wrong.
//!
//! The generator is SplitMix64: tiny, fast, and the same stream on every
//! platform and every version of this crate, so a printed seed replays
//! the same case for as long as the generators here do not change.

/// A deterministic pseudo-random stream.
pub struct Rng(u64);

/// Values at the edges of integer and length ranges.
const EDGES: [u64; 14] = [
    0,
    1,
    2,
    0x7f,
    0x80,
    0xff,
    0x3fff,
    0x4000,
    4096,
    4097,
    1 << 20,
    u32::MAX as u64,
    u64::MAX - 1,
    u64::MAX,
];

impl Rng {
    /// The stream of `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.u64() % n
        }
    }

    /// An index in `0..n`.
    pub fn index(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }

    /// A length in `lo..=hi`.
    pub fn len(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.index(hi - lo + 1)
    }

    /// True once in `n` draws.
    pub fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }

    /// A random bool.
    pub fn bool(&mut self) -> bool {
        self.u64() & 1 == 1
    }

    /// Small numbers mostly, edge values often, anything sometimes.
    pub fn number(&mut self) -> u64 {
        match self.below(4) {
            0 => EDGES[self.index(EDGES.len())],
            1 => self.u64(),
            _ => self.below(16),
        }
    }

    /// A `u32` drawn like [`Rng::number`].
    pub fn number_u32(&mut self) -> u32 {
        self.number() as u32
    }

    /// `len` random bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.u64() as u8).collect()
    }

    /// One element of `items`.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.index(items.len())]
    }
}

/// postcard's varint: 7 bits per byte, low bits first.
pub fn varint(mut n: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let low = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(low);
            return out;
        }
        out.push(low | 0x80);
    }
}

/// Applies one to four mutations to `bytes`; `donor` is another valid
/// encoding to splice from.
pub fn mutate(rng: &mut Rng, bytes: &mut Vec<u8>, donor: &[u8]) {
    for _ in 0..rng.len(1, 4) {
        mutate_once(rng, bytes, donor);
    }
}

fn mutate_once(rng: &mut Rng, bytes: &mut Vec<u8>, donor: &[u8]) {
    let at = rng.index(bytes.len() + 1);
    match rng.below(10) {
        // A flipped bit.
        0 if !bytes.is_empty() => {
            let i = rng.index(bytes.len());
            bytes[i] ^= 1 << rng.below(8);
        }
        // A byte at an edge value (a tag past the last, a continued varint).
        1 if !bytes.is_empty() => {
            let i = rng.index(bytes.len());
            bytes[i] = *rng.pick(&[0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff]);
        }
        // A length or count nudged: a varint byte plus or minus a little.
        2 if !bytes.is_empty() => {
            let i = rng.index(bytes.len());
            let delta = rng.len(1, 3) as u8;
            bytes[i] = if rng.bool() {
                bytes[i].wrapping_add(delta)
            } else {
                bytes[i].wrapping_sub(delta)
            };
        }
        // Truncation.
        3 => bytes.truncate(at),
        // A range removed.
        4 => {
            let end = (at + rng.len(1, 8)).min(bytes.len());
            bytes.drain(at..end);
        }
        // Random bytes inserted.
        5 => {
            let len = rng.len(1, 8);
            let extra = rng.bytes(len);
            bytes.splice(at..at, extra);
        }
        // A range of the input repeated.
        6 if !bytes.is_empty() => {
            let from = rng.index(bytes.len());
            let end = (from + rng.len(1, 16)).min(bytes.len());
            let copy = bytes[from..end].to_vec();
            bytes.splice(at..at, copy);
        }
        // A splice from another message: its tail replaces ours.
        7 if !donor.is_empty() => {
            let from = rng.index(donor.len());
            bytes.truncate(at);
            bytes.extend_from_slice(&donor[from..]);
        }
        // A huge count or length written over whatever was there.
        8 => {
            let n = EDGES[rng.index(EDGES.len())].max(rng.below(1 << 40));
            let end = (at + rng.len(0, 2)).min(bytes.len());
            bytes.splice(at..end, varint(n));
        }
        // The message cut short and padded with zeros or random bytes.
        _ => {
            bytes.truncate(at);
            let pad = rng.len(0, 16);
            if rng.bool() {
                bytes.resize(at + pad, 0);
            } else {
                bytes.extend(rng.bytes(pad));
            }
        }
    }
}
