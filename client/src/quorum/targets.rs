//! Choosing the replicas of one request: the sloppy quorum (Dynamo §4.6).
//!
//! The first `N` healthy nodes of the preference list take the request.
//! A healthy node from the extended list that stands in for a down home
//! replica is told which one (`hint`): asked to store, it keeps the object
//! apart and hands it home once that node is back; asked to read, it
//! answers from the hints it holds. A target that fails mid-request gives
//! its place to the next spare ([`Roster`]), for gets and puts alike.

use super::put::Moving;
use quire_shared::{Membership, NodeId, PreferenceList};
use std::collections::VecDeque;

/// Where one request for a key goes: what [`plan`] gives.
#[derive(Clone, Debug)]
pub struct Planned {
    /// The first `N` healthy nodes ([`choose`]).
    pub targets: Vec<Target>,
    /// The nodes that take a failed target's place ([`spares`]).
    pub spares: Vec<NodeId>,
    /// The home replicas a pending change swaps, if it moves the key.
    pub moving: Option<Moving>,
}

/// Plans a request for the key whose preference list under `doc` is
/// `list` (`n` replicas): the same for a get as for a put, so a read looks
/// where a write under the same failures went. While a change moves the
/// key, its incoming replicas get copies of their own in a put
/// ([`Moving`]), so they stand in for no one. The SDK and the simulation
/// both plan with this.
pub fn plan(
    doc: &Membership,
    list: &PreferenceList,
    n: usize,
    is_up: impl Fn(NodeId) -> bool + Copy,
) -> Planned {
    let moving = Moving::of(doc, list.partition, n, is_up);
    let kept;
    let list = match &moving {
        Some(m) => {
            let incoming: Vec<NodeId> = m.all_incoming().collect();
            kept = excluding(list, &incoming);
            &kept
        }
        None => list,
    };
    let targets = choose(list, is_up);
    let spares = spares(list, &targets, is_up);
    Planned {
        targets,
        spares,
        moving,
    }
}

/// One replica of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    /// The node to ask.
    pub node: NodeId,
    /// The home replica it stands in for, if it is not one itself.
    pub hint: Option<NodeId>,
}

/// `N` targets for `list`: healthy home replicas, then healthy stand-ins
/// for the down ones (each with its hint), then down home replicas that no
/// healthy node can stand in for (they may be back; asking costs little).
pub fn choose(list: &PreferenceList, is_up: impl Fn(NodeId) -> bool) -> Vec<Target> {
    let home = list.home();
    let mut targets: Vec<Target> = home
        .iter()
        .filter(|&&n| is_up(n))
        .map(|&node| Target { node, hint: None })
        .collect();
    let down: Vec<NodeId> = home.iter().copied().filter(|&n| !is_up(n)).collect();
    let mut stand_ins = list.extended().iter().copied().filter(|&n| is_up(n));
    for &home_node in &down {
        match stand_ins.next() {
            Some(node) => targets.push(Target {
                node,
                hint: Some(home_node),
            }),
            None => targets.push(Target {
                node: home_node,
                hint: None,
            }),
        }
    }
    targets
}

/// `list` without `nodes` in its extended part. While a change moves a
/// partition, a put sends its incoming home replicas a copy of their own
/// ([`super::put::Moving`]), so they must not also stand in for a home
/// replica in the same put: a node is asked at most once per request.
fn excluding(list: &PreferenceList, nodes: &[NodeId]) -> PreferenceList {
    let n = list.n.min(list.nodes.len());
    let mut kept = list.clone();
    kept.nodes = list.nodes[..n]
        .iter()
        .chain(list.nodes[n..].iter().filter(|id| !nodes.contains(id)))
        .copied()
        .collect();
    kept
}

/// Nodes of the extended list that are not among `targets`, healthy ones
/// first: each can replace a target that fails mid-request.
pub fn spares(
    list: &PreferenceList,
    targets: &[Target],
    is_up: impl Fn(NodeId) -> bool,
) -> Vec<NodeId> {
    let unused = list
        .extended()
        .iter()
        .copied()
        .filter(|n| !targets.iter().any(|t| t.node == *n));
    let (up, down): (Vec<NodeId>, Vec<NodeId>) = unused.partition(|&n| is_up(n));
    up.into_iter().chain(down).collect()
}

/// The nodes one request uses: its targets, then the spares called in to
/// take failed targets' places, each with the home replica it stands in
/// for. A node is on the roster at most once, so it is asked at most once.
#[derive(Clone, Debug)]
pub struct Roster {
    /// The targets in order, then spares in the order they were called in.
    nodes: Vec<Target>,
    /// How many targets the request began with (`N`): a spare only ever
    /// takes a failed node's place, so no more than this many can succeed.
    targets: usize,
    /// Spares not called in yet, healthy ones first.
    spares: VecDeque<NodeId>,
    /// Nodes that failed (their place went to a spare, if one was left).
    failed: Vec<NodeId>,
}

impl Roster {
    /// A roster of `targets`, falling back on `spares` (from [`choose`]
    /// and [`spares`]: distinct nodes, no spare among the targets).
    pub fn new(targets: &[Target], spares: &[NodeId]) -> Self {
        let roster = Self {
            nodes: targets.to_vec(),
            targets: targets.len(),
            spares: spares.iter().copied().collect(),
            failed: Vec::new(),
        };
        debug_assert!(
            roster.nodes.iter().enumerate().all(|(i, t)| {
                !roster.nodes[..i].iter().any(|o| o.node == t.node)
                    && !roster.spares.contains(&t.node)
            }),
            "targets and spares must be distinct nodes"
        );
        roster
    }

    /// How many targets the request began with (`N`).
    pub fn targets(&self) -> usize {
        self.targets
    }

    /// Nodes on the roster: targets and the spares called in so far.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// The roster entry at `index` (targets first, in order).
    pub fn get(&self, index: usize) -> Option<Target> {
        self.nodes.get(index).copied()
    }

    /// Every entry, targets first.
    pub fn iter(&self) -> impl Iterator<Item = &Target> {
        self.nodes.iter()
    }

    /// `node`'s entry, if it is on the roster.
    pub fn find(&self, node: NodeId) -> Option<Target> {
        self.nodes.iter().copied().find(|t| t.node == node)
    }

    /// True when `node` is a spare not called in yet.
    pub fn has_spare(&self, node: NodeId) -> bool {
        self.spares.contains(&node)
    }

    /// True when `node` failed in this request.
    pub fn has_failed(&self, node: NodeId) -> bool {
        self.failed.contains(&node)
    }

    /// Records that `node` failed and calls in the next spare, standing in
    /// for the home replica `node` was (or stood in for). `None` when
    /// `node` is not on the roster, had failed already, or no spare is
    /// left.
    pub fn substitute(&mut self, node: NodeId) -> Option<Target> {
        let failed = self.find(node)?;
        if self.has_failed(node) {
            return None;
        }
        self.failed.push(node);
        let spare = Target {
            node: self.spares.pop_front()?,
            hint: Some(failed.hint.unwrap_or(node)),
        };
        self.nodes.push(spare);
        Some(spare)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list() -> PreferenceList {
        // Five nodes, N = 3: home 1, 2, 3; extended 4, 5.
        PreferenceList {
            partition: 0,
            nodes: [1, 2, 3, 4, 5].map(NodeId).to_vec(),
            n: 3,
        }
    }

    fn t(node: u64, hint: Option<u64>) -> Target {
        Target {
            node: NodeId(node),
            hint: hint.map(NodeId),
        }
    }

    #[test]
    fn all_up_means_the_home_replicas() {
        assert_eq!(
            choose(&list(), |_| true),
            vec![t(1, None), t(2, None), t(3, None)]
        );
    }

    #[test]
    fn down_home_replicas_get_stand_ins_with_hints() {
        let up = |n: NodeId| {
            let n = n.get();
            n != 1 && n != 3
        };
        assert_eq!(
            choose(&list(), up),
            vec![t(2, None), t(4, Some(1)), t(5, Some(3))]
        );
    }

    #[test]
    fn without_enough_stand_ins_down_homes_are_still_asked() {
        let up = |n: NodeId| {
            let n = n.get();
            n == 2 || n == 5
        };
        assert_eq!(
            choose(&list(), up),
            vec![t(2, None), t(5, Some(1)), t(3, None)]
        );
    }

    #[test]
    fn spares_are_the_unused_extended_nodes_healthy_first() {
        let up = |n: NodeId| {
            let n = n.get();
            n != 4
        };
        let targets = choose(&list(), up);
        assert_eq!(spares(&list(), &targets, up), vec![NodeId(5), NodeId(4)]);
        let up = |n: NodeId| {
            let n = n.get();
            n != 1 && n != 4
        };
        let targets = choose(&list(), up);
        assert_eq!(targets[2], t(5, Some(1)));
        assert_eq!(spares(&list(), &targets, up), vec![NodeId(4)]);
    }

    #[test]
    fn every_home_down_still_yields_n_targets() {
        let up = |n: NodeId| {
            let n = n.get();
            n >= 4
        };
        let chosen = choose(&list(), up);
        assert_eq!(chosen.len(), 3);
        assert_eq!(chosen[0], t(4, Some(1)));
    }

    #[test]
    fn a_failed_node_gives_its_place_to_a_spare_standing_in_for_its_home() {
        let targets = [t(1, None), t(4, Some(2)), t(3, None)];
        let mut roster = Roster::new(&targets, &[NodeId(5)]);
        assert_eq!(roster.substitute(NodeId(9)), None, "not on the roster");
        // A stand-in failed: its spare stands in for the same home.
        assert_eq!(roster.substitute(NodeId(4)), Some(t(5, Some(2))));
        assert_eq!(roster.substitute(NodeId(4)), None, "fails only once");
        assert_eq!(roster.substitute(NodeId(1)), None, "no spare left");
        assert!(roster.has_failed(NodeId(1)));
        assert_eq!((roster.len(), roster.targets()), (4, 3));
        assert_eq!(roster.find(NodeId(5)), Some(t(5, Some(2))));
    }
}
