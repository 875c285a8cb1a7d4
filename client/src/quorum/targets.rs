//! Choosing the replicas of one request: the sloppy quorum (Dynamo §4.6).
//!
//! The first `N` healthy nodes of the preference list take the request.
//! A healthy node from the extended list that stands in for a down home
//! replica is told which one (`hint`), keeps the object apart, and hands it
//! home once that node is back.

use quire_shared::{NodeId, PreferenceList};

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
}
