//! The spread rule, checked on an owner table that may have holes.
//!
//! A hole (a partition not yet given an owner) counts as an item of its own:
//! it never clashes, so a half-filled table is judged only on what it has.
//! Checks are local: changing one partition can only break walks that
//! start a window's length (in runs) before it.

use super::{Plan, Spread};

/// An owner slot with no owner yet.
pub(super) const HOLE: u32 = u32::MAX;

impl Plan {
    /// Checks the walk starting at `start`: `Err(p)` names a partition
    /// whose owner repeats an item already met in the window (clearing it
    /// removes this clash).
    pub(super) fn check_from(&self, owners: &[u32], start: usize) -> Result<(), usize> {
        let q = self.q;
        let mut seen: Vec<usize> = Vec::with_capacity(self.window);
        match self.spread {
            Spread::Free => Ok(()),
            Spread::Strict => {
                for step in 0..self.window.min(q) {
                    let p = (start + step) % q;
                    if owners[p] == HOLE {
                        continue;
                    }
                    let item = self.item(owners[p]);
                    if seen.contains(&item) {
                        return Err(p);
                    }
                    seen.push(item);
                }
                Ok(())
            }
            Spread::Runs => {
                let mut runs = 0;
                let mut last = HOLE;
                for step in 0..q {
                    let p = (start + step) % q;
                    let owner = owners[p];
                    if owner != HOLE && owner == last {
                        continue;
                    }
                    last = owner;
                    runs += 1;
                    if runs > self.window {
                        break;
                    }
                    if owner == HOLE {
                        continue;
                    }
                    let item = self.item(owner);
                    if seen.contains(&item) {
                        return Err(p);
                    }
                    seen.push(item);
                }
                Ok(())
            }
        }
    }

    /// True when no walk that can see partition `p` breaks the rule.
    pub(super) fn fits_around(&self, owners: &[u32], p: usize) -> bool {
        let q = self.q;
        let back = match self.spread {
            Spread::Free => return true,
            Spread::Strict => self.window - 1,
            Spread::Runs => {
                // Walk back until `window` run boundaries are behind us.
                let mut changes = 0;
                let mut back = 0;
                while back + 1 < q && changes <= self.window {
                    let a = owners[(p + q - back - 1) % q];
                    let b = owners[(p + q - back) % q];
                    if a != b || a == HOLE {
                        changes += 1;
                    }
                    back += 1;
                }
                back
            }
        };
        (0..=back.min(q - 1)).all(|d| self.check_from(owners, (p + q - d) % q).is_ok())
    }

    /// True when the whole table keeps the rule.
    pub(super) fn fits(&self, owners: &[u32]) -> bool {
        (0..self.q).all(|p| self.check_from(owners, p).is_ok())
    }
}
