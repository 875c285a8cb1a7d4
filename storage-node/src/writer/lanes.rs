//! Which waiting writes go into the next commit: the foreground's apart
//! from transfer pages, taking turns.
//!
//! A transfer page is up to 1 MiB of objects, and its commit takes many
//! times a foreground write's. Committed together, every put and replicate
//! in the batch waited for the page; and since a put during a move also
//! waits for its copy on the incoming node, which is the node receiving
//! the pages, the foreground's update p99.9 during a join's move was 93 ms
//! against 13 ms before it (one run of `benches/transfer-join.sh` with
//! `WORKLOAD=a`). Now a page never shares a commit with foreground writes,
//! and pages and the foreground take turns: a foreground write waits for
//! at most one commit of pages (up to a batch of them), and pages still
//! move while the foreground is busy (35 ms against 14 ms in the next
//! run).

use std::collections::VecDeque;

/// The writes waiting for a commit, in two lanes.
#[derive(Debug)]
pub(super) struct Lanes<J> {
    foreground: VecDeque<J>,
    pages: VecDeque<J>,
    /// True when the pages had the last commit (or none has happened).
    pages_had_turn: bool,
}

impl<J> Lanes<J> {
    /// Empty lanes.
    pub(super) fn new() -> Self {
        Self {
            foreground: VecDeque::new(),
            pages: VecDeque::new(),
            pages_had_turn: true,
        }
    }

    /// True when nothing waits.
    pub(super) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Jobs waiting in both lanes.
    pub(super) fn len(&self) -> usize {
        self.foreground.len() + self.pages.len()
    }

    /// Queues `job`, a transfer page if `page`.
    pub(super) fn push(&mut self, job: J, page: bool) {
        if page {
            self.pages.push_back(job);
        } else {
            self.foreground.push_back(job);
        }
    }

    /// Moves the next commit's jobs (at most `max`) into `batch`: the lane
    /// whose turn it is, or the other when that one is empty.
    pub(super) fn next_batch(&mut self, max: usize, batch: &mut Vec<J>) {
        let pages_turn = !self.pages_had_turn || self.foreground.is_empty();
        let lane = if pages_turn && !self.pages.is_empty() {
            self.pages_had_turn = true;
            &mut self.pages
        } else {
            self.pages_had_turn = false;
            &mut self.foreground
        };
        let take = lane.len().min(max);
        batch.extend(lane.drain(..take));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(lanes: &mut Lanes<&'static str>, max: usize) -> Vec<&'static str> {
        let mut out = Vec::new();
        lanes.next_batch(max, &mut out);
        out
    }

    #[test]
    fn pages_never_share_a_commit_with_the_foreground_and_take_turns() {
        let mut lanes = Lanes::new();
        lanes.push("put a", false);
        lanes.push("page 1", true);
        lanes.push("put b", false);
        lanes.push("page 2", true);
        assert_eq!(batch(&mut lanes, 8), ["put a", "put b"]);
        lanes.push("put c", false);
        assert_eq!(
            batch(&mut lanes, 8),
            ["page 1", "page 2"],
            "the pages' turn"
        );
        assert_eq!(batch(&mut lanes, 8), ["put c"]);
        assert!(lanes.is_empty());
    }

    #[test]
    fn a_lane_alone_takes_every_commit_up_to_the_batch_limit() {
        let mut lanes = Lanes::new();
        for job in ["page 1", "page 2", "page 3"] {
            lanes.push(job, true);
        }
        assert_eq!(batch(&mut lanes, 2), ["page 1", "page 2"]);
        assert_eq!(batch(&mut lanes, 2), ["page 3"]);
        for job in ["put a", "put b", "put c"] {
            lanes.push(job, false);
        }
        assert_eq!(batch(&mut lanes, 2), ["put a", "put b"]);
        assert_eq!(batch(&mut lanes, 2), ["put c"]);
        assert!(batch(&mut lanes, 2).is_empty());
    }

    #[test]
    fn a_busy_foreground_does_not_starve_the_pages() {
        let mut lanes = Lanes::new();
        lanes.push("page 1", true);
        let mut pages_committed = 0;
        for _ in 0..4 {
            lanes.push("put", false);
            lanes.push("put", false);
            let next = batch(&mut lanes, 8);
            pages_committed += next.iter().filter(|j| j.starts_with("page")).count();
            let pages = next.iter().filter(|j| j.starts_with("page")).count();
            assert!(
                pages == 0 || pages == next.len(),
                "a mixed commit: {next:?}"
            );
        }
        assert_eq!(pages_committed, 1, "the page had a turn of its own");
    }
}
