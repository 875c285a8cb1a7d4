//! Hint delivery, as the SDK's maintenance pass does it
//! (`client/src/maintain.rs`), one call at a time.
//!
//! For every (holder, target) pair of members: page through the hints the
//! holder keeps for the target, replicate each one home, stop on the
//! target's first failure, then ask the holder to drop what was delivered
//! by the clock of the copy delivered (it keeps any hint written since it
//! was read: `hint_delivered`, run by the node model). The SDK's pass is async code; this is the same walk
//! written as a state machine so the simulation can interleave it with
//! everything else and lose, delay or duplicate its messages. Pages are
//! two hints long here, so paging and its cursor are exercised.
//!
//! Anti-entropy ([`super::exchange`]) is a pass of the same kind, started
//! from the same places (the maintenance tick and each repair round in
//! [`super::runner`]), but runs the SDK's own exchange code rather than a
//! copy of its walk; partition transfer will be another.

use super::world::{Owner, World};
use super::STORE;
use crate::quorum::NodeFailure;
use quire_shared::wire::{DeliveredHint, Hint, Reply, Request};
use quire_shared::NodeId;

/// Hints asked for per page.
const PAGE: u32 = 2;

/// Where the pass is in one (holder, target) pair.
#[derive(Debug)]
enum Step {
    /// Asking the holder for a page after `after`.
    Page { after: Option<Vec<u8>> },
    /// Replicating `page[at]` home.
    Deliver {
        page: Vec<Hint>,
        next: Option<Vec<u8>>,
        at: usize,
        delivered: Vec<DeliveredHint>,
        target_down: bool,
    },
    /// Asking the holder to drop `delivered` (named by their clocks).
    Drop {
        delivered: Vec<DeliveredHint>,
        next: Option<Vec<u8>>,
        target_down: bool,
    },
}

/// One hint-delivery pass over every pair of members.
#[derive(Debug)]
pub struct HintPass {
    /// (holder, target) pairs, in member order.
    pairs: Vec<(NodeId, NodeId)>,
    /// The pair being worked on.
    pair: usize,
    /// Where in it.
    step: Step,
}

impl HintPass {
    /// A pass over every ordered pair of distinct `members`.
    pub fn new(members: &[NodeId]) -> Self {
        let pairs = members
            .iter()
            .flat_map(|&h| {
                members
                    .iter()
                    .filter(move |&&t| t != h)
                    .map(move |&t| (h, t))
            })
            .collect();
        Self {
            pairs,
            pair: 0,
            step: Step::Page { after: None },
        }
    }

    /// The request to send next, or `None` when the pass is over.
    fn request(&mut self) -> Option<(NodeId, Request)> {
        // Each turn either returns or moves on (a page or a pair): bounded
        // by pages times pairs.
        loop {
            let (holder, target) = *self.pairs.get(self.pair)?;
            match &mut self.step {
                Step::Page { after } => {
                    let page = Request::Hints {
                        target,
                        after: after.clone(),
                        limit: PAGE,
                    };
                    return Some((holder, page));
                }
                Step::Deliver {
                    page,
                    at,
                    target_down: false,
                    ..
                } if *at < page.len() => {
                    let hint = &page[*at];
                    let replicate = Request::Replicate {
                        store: STORE.into(),
                        key: hint.key.clone(),
                        object: hint.object.clone(),
                        hint: None,
                    };
                    return Some((target, replicate));
                }
                Step::Deliver {
                    delivered,
                    next,
                    target_down,
                    ..
                } => {
                    if delivered.is_empty() {
                        let (next, down) = (next.take(), *target_down);
                        self.after_page(next, down);
                    } else {
                        self.step = Step::Drop {
                            delivered: std::mem::take(delivered),
                            next: next.take(),
                            target_down: *target_down,
                        };
                    }
                }
                Step::Drop { delivered, .. } => {
                    let drop = Request::DropHints {
                        target,
                        hints: delivered.clone(),
                    };
                    return Some((holder, drop));
                }
            }
        }
    }

    /// The answer to the last request; returns hints newly delivered home.
    fn advance(&mut self, result: Result<Reply, NodeFailure>) -> u64 {
        match &mut self.step {
            Step::Page { .. } => match result {
                Ok(Reply::Hints { hints, next }) if !hints.is_empty() => {
                    self.step = Step::Deliver {
                        page: hints,
                        next,
                        at: 0,
                        delivered: Vec::new(),
                        target_down: false,
                    };
                }
                // No hints, or the holder did not answer: next pair.
                _ => self.after_page(None, false),
            },
            Step::Deliver {
                page,
                at,
                delivered,
                target_down,
                ..
            } => {
                let hint = &page[*at];
                *at += 1;
                match result {
                    Ok(Reply::Stored(_)) => {
                        // The stand-in drops by the clock of what went home.
                        delivered.push(DeliveredHint {
                            store: hint.store.clone(),
                            key: hint.key.clone(),
                            clock: hint.object.join(),
                        });
                        return 1;
                    }
                    // Not stored: left for the next pass.
                    Ok(_) => {}
                    // The SDK's pass treats a refusal like silence: it
                    // stops delivering to this target for now.
                    Err(_) => *target_down = true,
                }
            }
            Step::Drop {
                next, target_down, ..
            } => {
                let (next, down) = (next.take(), *target_down);
                self.after_page(next, down);
            }
        }
        0
    }

    /// A page is done: the next one, or the next pair.
    fn after_page(&mut self, next: Option<Vec<u8>>, target_down: bool) {
        match next {
            Some(cursor) if !target_down => {
                self.step = Step::Page {
                    after: Some(cursor),
                }
            }
            _ => {
                self.pair += 1;
                self.step = Step::Page { after: None };
            }
        }
    }
}

impl World {
    /// Starts a hint-delivery pass by the maintenance client.
    pub(super) fn start_pass(&mut self) {
        if self.knobs.skip_hint_delivery {
            return;
        }
        let members: Vec<NodeId> = self.nodes.iter().map(|n| n.id).collect();
        trace!(self, "hint pass starts");
        self.pass = Some(HintPass::new(&members));
        self.pass_send();
    }

    /// Sends the pass's next request, or ends it.
    fn pass_send(&mut self) {
        let next = self.pass.as_mut().and_then(HintPass::request);
        match next {
            Some((node, request)) => {
                let client = self.maintainer();
                let budget = self.cfg.timeout_ms;
                self.call(Owner::Hints, client, node, request, budget);
            }
            None => {
                trace!(self, "hint pass ends");
                self.pass = None;
            }
        }
    }

    /// The pass's call came back.
    pub(super) fn pass_result(&mut self, result: Result<Reply, NodeFailure>) -> Result<(), String> {
        if let Some(pass) = &mut self.pass {
            self.stats.hints_delivered += pass.advance(result);
            self.pass_send();
        }
        Ok(())
    }
}
