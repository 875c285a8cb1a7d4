//! The trace of one world: every event as it happens, and a hash of them.
//!
//! Determinism is a property to test, not to assume (as TigerBeetle's VOPR
//! does): a world is a function of its seed, so running a seed twice must
//! give the same events in the same order. Every event is folded into a
//! 64-bit FNV-1a hash as it is written, whether or not its text is kept;
//! the text is kept only when a world is replayed, so the thousands of CI
//! worlds pay for hashing, not for storing lines. FNV is written out here
//! rather than taken from `std`'s `DefaultHasher`, whose algorithm may
//! change between Rust releases: a hash must mean the same thing tomorrow.
//!
//! Nothing that differs between runs may reach a trace: no `Instant`, no
//! address, no `HashMap` order. Times are milliseconds since the world
//! began.

use quire_shared::{NodeId, Object};
use std::fmt::{self, Write};

/// FNV-1a over the bytes written to it.
struct Fnv(u64);

impl Write for Fnv {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
        Ok(())
    }
}

/// Events of one world, hashed as they come, kept as text on request.
pub struct Trace {
    /// The hash of every event so far.
    hash: Fnv,
    /// The events' text, when kept (replays).
    lines: Option<Vec<String>>,
    /// Events so far.
    events: u64,
}

impl Trace {
    /// An empty trace; `keep` keeps each event's text for printing.
    pub fn new(keep: bool) -> Self {
        Self {
            hash: Fnv(0xcbf2_9ce4_8422_2325),
            lines: keep.then(Vec::new),
            events: 0,
        }
    }

    /// Records an event at `now_ms`. The hash covers the same text whether
    /// it is kept or not.
    pub fn event(&mut self, now_ms: u64, what: fmt::Arguments<'_>) {
        self.events += 1;
        match &mut self.lines {
            Some(lines) => {
                let line = format!("{now_ms:>6} {what}");
                let _ = self.hash.write_str(&line);
                let _ = self.hash.write_str("\n");
                lines.push(line);
            }
            None => {
                let _ = writeln!(self.hash, "{now_ms:>6} {what}");
            }
        }
    }

    /// The hash of every event so far.
    pub fn hash(&self) -> u64 {
        self.hash.0
    }

    /// Events recorded so far.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// The kept lines (empty unless kept).
    pub fn lines(&self) -> &[String] {
        self.lines.as_deref().unwrap_or(&[])
    }
}

/// An object as a trace shows it: `{actor:counter[values]}` per entry,
/// actors and values short (values are the workload's unique names; `-`
/// is a tombstone).
pub struct Show<'a>(pub &'a Object);

impl fmt::Display for Show<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, e) in self.0.entries().iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "a{}:{}[", e.actor.get(), e.counter)?;
            for (j, v) in e.values.iter().enumerate() {
                if j > 0 {
                    f.write_str(",")?;
                }
                match &v.data {
                    Some(d) => f.write_str(&String::from_utf8_lossy(d))?,
                    None => f.write_str("-")?,
                }
                write!(f, "@{}", v.timestamp_ms)?;
            }
            f.write_str("]")?;
        }
        f.write_str("}")
    }
}

/// An optional object: `none` when absent.
pub struct ShowOpt<'a>(pub Option<&'a Object>);

impl fmt::Display for ShowOpt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(o) => Show(o).fmt(f),
            None => f.write_str("none"),
        }
    }
}

/// A node as a trace shows it: `n3`.
pub struct N(pub NodeId);

impl fmt::Display for N {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}", self.0.get())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quire_shared::{ActorId, Dvvset, Value};

    #[test]
    fn the_hash_is_the_same_whether_lines_are_kept_or_not() {
        let mut o = Dvvset::new();
        o.event(ActorId(3), Value::bytes(b"c0.1".to_vec(), 9));
        o.event(ActorId(3), Value::tombstone(10));
        let (mut kept, mut hashed) = (Trace::new(true), Trace::new(false));
        for t in [&mut kept, &mut hashed] {
            t.event(5, format_args!("{} stores {}", N(NodeId(2)), Show(&o)));
            t.event(7, format_args!("{}", ShowOpt(None)));
        }
        assert_eq!(kept.hash(), hashed.hash());
        assert_eq!(kept.events(), 2);
        assert_eq!(kept.lines()[0], "     5 n2 stores {a3:2[-@10,c0.1@9]}");
        assert!(hashed.lines().is_empty());
        let mut other = Trace::new(false);
        other.event(5, format_args!("n2 stores nothing"));
        assert_ne!(other.hash(), hashed.hash());
    }
}
