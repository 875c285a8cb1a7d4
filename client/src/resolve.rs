//! Reconciling siblings: what the application sees when writes were
//! concurrent.
//!
//! Dynamo keeps every concurrent value and leaves the merge to the
//! application, which knows what a cart is (Dynamo §4.4). A [`Resolver`]
//! is that merge. Built in: [`KeepSiblings`] (hand every sibling over, the
//! default) and [`LastWriteWins`] (keep the newest timestamp). A closure
//! `Fn(Vec<Sibling>) -> Vec<Sibling>` is a resolver too.

/// One concurrent value of a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sibling {
    /// The value's bytes.
    pub value: Vec<u8>,
    /// When the writing client made it (milliseconds since the Unix epoch,
    /// the writer's clock): what last-write-wins compares.
    pub timestamp_ms: u64,
}

/// Collapses siblings for the application.
///
/// Called with two or more siblings; returns what the read should show.
/// Returning one sibling resolves the conflict for this read; the next
/// write with the read's context makes it permanent.
pub trait Resolver: Send + Sync {
    /// Reconciles `siblings` (at least two).
    fn resolve(&self, siblings: Vec<Sibling>) -> Vec<Sibling>;
}

impl<F> Resolver for F
where
    F: Fn(Vec<Sibling>) -> Vec<Sibling> + Send + Sync,
{
    fn resolve(&self, siblings: Vec<Sibling>) -> Vec<Sibling> {
        self(siblings)
    }
}

/// Shows every sibling: the application merges them itself. Nothing is
/// ever dropped.
#[derive(Clone, Copy, Debug, Default)]
pub struct KeepSiblings;

impl Resolver for KeepSiblings {
    fn resolve(&self, siblings: Vec<Sibling>) -> Vec<Sibling> {
        siblings
    }
}

/// Keeps the sibling with the newest timestamp (ties: the greater bytes,
/// so every client picks the same one). Concurrent writes other than the
/// newest are lost; clocks that disagree decide which.
#[derive(Clone, Copy, Debug, Default)]
pub struct LastWriteWins;

impl Resolver for LastWriteWins {
    fn resolve(&self, siblings: Vec<Sibling>) -> Vec<Sibling> {
        siblings
            .into_iter()
            .max_by(|a, b| (a.timestamp_ms, &a.value).cmp(&(b.timestamp_ms, &b.value)))
            .into_iter()
            .collect()
    }
}

/// A resolver that folds siblings pairwise with `merge` (for example a set
/// union); the result carries the newest timestamp.
pub fn merge_with<F>(merge: F) -> impl Resolver
where
    F: Fn(&[u8], &[u8]) -> Vec<u8> + Send + Sync,
{
    move |siblings: Vec<Sibling>| {
        let mut it = siblings.into_iter();
        let Some(first) = it.next() else {
            return Vec::new();
        };
        let merged = it.fold(first, |acc, s| Sibling {
            value: merge(&acc.value, &s.value),
            timestamp_ms: acc.timestamp_ms.max(s.timestamp_ms),
        });
        vec![merged]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str, t: u64) -> Sibling {
        Sibling {
            value: v.as_bytes().to_vec(),
            timestamp_ms: t,
        }
    }

    #[test]
    fn last_write_wins_keeps_the_newest_and_breaks_ties_by_value() {
        assert_eq!(
            LastWriteWins.resolve(vec![s("a", 5), s("b", 9), s("c", 7)]),
            vec![s("b", 9)]
        );
        assert_eq!(
            LastWriteWins.resolve(vec![s("x", 5), s("y", 5)]),
            vec![s("y", 5)]
        );
        assert_eq!(
            LastWriteWins.resolve(vec![s("y", 5), s("x", 5)]),
            vec![s("y", 5)]
        );
    }

    #[test]
    fn keep_siblings_keeps_everything() {
        let all = vec![s("a", 1), s("b", 2)];
        assert_eq!(KeepSiblings.resolve(all.clone()), all);
    }

    #[test]
    fn merge_with_folds_every_sibling() {
        let union = merge_with(|a, b| {
            let mut v: Vec<u8> = a.iter().chain(b).copied().collect();
            v.sort();
            v.dedup();
            v
        });
        assert_eq!(
            union.resolve(vec![s("ab", 1), s("bc", 3), s("d", 2)]),
            vec![s("abcd", 3)]
        );
    }
}
