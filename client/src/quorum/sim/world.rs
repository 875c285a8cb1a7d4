//! A world: nodes, clients, the network between them, and the loop that
//! moves it forward one event at a time.
//!
//! Clients talk to nodes only through calls, modelled on the SDK's driver
//! (`crate::driver`): one request per call, a budget of the call timeout
//! (never past the machine's deadline), and an `Unreachable` failure if no
//! answer arrives within it; an answer after that is dropped, as the
//! driver gives up the stream. One liberty is taken on purpose: a reply
//! the network duplicates reaches the machine twice (the driver would pass
//! one), because a machine must not count a node twice whatever it is
//! told. Every answer and failure also feeds the client's failure detector
//! ([`crate::health::Health`], the SDK's own), as the driver's observer
//! does, so later requests choose their targets as a real client would.

use super::client::{Op, SimClient};
use super::config::{Knobs, WorldConfig};
use super::exchange::ExchangePass;
use super::history::{History, WriteId};
use super::network::{Agenda, Message, Network, Payload};
use super::node::{Key, Mint, SimNode};
use super::rng::Rng;
use super::runner::Stats;
use super::tasks::Task;
use super::trace::{Trace, N};
use super::STORE;
use quire_shared::wire::Request;
use quire_shared::{
    ClusterId, Durability, Member, Membership, NodeId, PreferenceList, StoreConfig,
};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Most steps a world may take to settle: the busiest of the first 3 000
/// worlds trace about 1 300 events, so a world past this is breeding
/// events (or a machine is spinning), not busy.
const STEPS_MAX: u64 = 100_000;

/// Something due at a moment of virtual time.
#[derive(Debug)]
pub enum Event {
    /// A message arrives.
    Deliver(Box<Message>),
    /// A call's budget runs out.
    CallTimeout(u64),
    /// A client may start its next operation.
    ClientTick(usize),
    /// The nemesis acts (crash, partition, heal).
    Nemesis,
    /// A crashed node comes back.
    Restart(NodeId),
    /// Buffered nodes flush.
    Flush,
    /// The maintenance client starts a hint-delivery pass.
    HintTick,
    /// The maintenance client starts an anti-entropy pass.
    ExchangeTick,
    /// The world's membership change is committed.
    Change,
    /// Faults stop: partitions heal, nodes restart, the network calms.
    ChaosEnds,
}

/// Who waits for a call's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    /// A quorum operation.
    Op(u64),
    /// A task's call number `.1` (a task: [`super::tasks`]).
    Task(u64, u64),
    /// A probe of a node the client believes down.
    Probe,
}

/// A call in flight.
#[derive(Debug)]
pub struct Call {
    /// Who waits for it.
    pub owner: Owner,
    /// The calling client.
    pub client: usize,
    /// The node called.
    pub node: NodeId,
    /// The write a `Put` carries (a node that coordinates it gives this
    /// write a dot, even after the call timed out and its operation
    /// ended).
    pub write: Option<WriteId>,
    /// Whether an answer has reached the owner.
    pub answered: bool,
    /// Whether the budget ran out (later answers are dropped).
    pub timed_out: bool,
}

/// Everything in one simulated world.
pub struct World {
    /// Its shape.
    pub cfg: WorldConfig,
    /// Deliberate bugs (all off in real worlds).
    pub knobs: Knobs,
    /// The one source of randomness.
    pub rng: Rng,
    /// The instant virtual time 0 stands for (machines take `Instant`s).
    base: Instant,
    /// Virtual time, in milliseconds.
    pub now_ms: u64,
    /// What is due, and when.
    pub agenda: Agenda<Event>,
    /// The network.
    pub net: Network,
    /// The storage nodes; node `i` has id `i + 1`.
    pub nodes: Vec<SimNode>,
    /// The keys, and their preference lists.
    pub lists: BTreeMap<Key, PreferenceList>,
    /// Hands out actor ids.
    pub mint: Mint,
    /// Application clients, then the maintenance client, then the auditor
    /// that reads every key once faults stop.
    pub clients: Vec<SimClient>,
    /// Operations running, by id.
    pub ops: BTreeMap<u64, Op>,
    /// The next operation's id.
    pub next_op: u64,
    /// Every call made, by id (a world makes a few hundred).
    pub calls: BTreeMap<u64, Call>,
    /// The next call's id.
    next_call: u64,
    /// The hint-delivery pass's task, while one runs.
    pub hint_pass: Option<u64>,
    /// The anti-entropy pass, while one runs.
    pub exchanges: Option<ExchangePass>,
    /// Tasks under way, by id.
    pub tasks: BTreeMap<u64, Task>,
    /// The last task's id.
    pub next_task: u64,
    /// Virtual wall-clock milliseconds, as tasks read them.
    pub wall: Rc<Cell<u64>>,
    /// The moves task of a pending change, while one runs.
    pub moves: Option<u64>,
    /// The hand-off-and-drop task, while one runs.
    pub drops: Option<u64>,
    /// Whether a drop task has reached every node since the flip.
    pub dropped: bool,
    /// The membership document (it never changes in a world).
    pub doc: Membership,
    /// What was written.
    pub history: History,
    /// What happened.
    pub trace: Trace,
    /// Counts for the run's summary.
    pub stats: Stats,
    /// Changes to any node's disk so far: repair is over when a round
    /// changes nothing.
    pub mutations: u64,
    /// True while faults last.
    pub chaos: bool,
    /// Each node's clock offset, in milliseconds.
    pub skews: Vec<u64>,
}

impl World {
    /// The world of `seed`.
    pub fn new(seed: u64, knobs: Knobs, keep_trace: bool) -> Self {
        let mut rng = Rng::new(seed);
        let cfg = WorldConfig::draw(&mut rng, knobs);
        let mut mint = Mint::default();
        let buffered = cfg.durability == Durability::Buffered;
        // A node that joins later (or replaces a member) exists from the
        // start, outside the membership.
        let spare = cfg.change.is_some_and(|(_, kind)| kind.brings_a_node());
        let count = cfg.nodes + usize::from(spare);
        let ids: Vec<NodeId> = (1..=count as u64).map(NodeId).collect();
        let nodes = ids
            .iter()
            .map(|&id| SimNode::new(id, buffered, &mut mint))
            .collect();
        let members = ids[..cfg.nodes].iter().map(|&id| member(id)).collect();
        let store = StoreConfig {
            name: STORE.into(),
            n: cfg.n as u8,
            r: cfg.r as u8,
            w: cfg.w as u8,
            durability: cfg.durability,
            policy: cfg.policy,
            limits: cfg.limits,
        };
        let doc = Membership::new(ClusterId(1), 16, members, vec![store])
            .expect("a valid simulated membership");
        let keys: Vec<Key> = (0..cfg.keys)
            .map(|k| format!("k{k}").into_bytes())
            .collect();
        let lists = lists_of(&doc, keys, cfg.n);
        let skews = ids
            .iter()
            .map(|_| rng.between(0, cfg.clock_skew_ms_max))
            .collect();
        // Application clients, the maintenance client, the auditor.
        let clients = (0..cfg.clients + 2)
            .map(|c| {
                SimClient::new(if c < cfg.clients {
                    cfg.ops_per_client
                } else {
                    0
                })
            })
            .collect();
        Self {
            net: Network::new(cfg.faults),
            cfg,
            knobs,
            rng,
            base: Instant::now(),
            now_ms: 0,
            agenda: Agenda::new(),
            nodes,
            lists,
            mint,
            clients,
            ops: BTreeMap::new(),
            next_op: 0,
            calls: BTreeMap::new(),
            next_call: 0,
            hint_pass: None,
            exchanges: None,
            tasks: BTreeMap::new(),
            next_task: 0,
            wall: Rc::new(Cell::new(1_000_000)),
            moves: None,
            drops: None,
            dropped: false,
            doc,
            history: History::default(),
            trace: Trace::new(keep_trace),
            stats: Stats::default(),
            mutations: 0,
            chaos: true,
            skews,
        }
    }

    /// The `Instant` of virtual time `ms`.
    pub fn instant(&self, ms: u64) -> Instant {
        self.base + Duration::from_millis(ms)
    }

    /// The virtual time of `t`.
    pub fn ms(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.base).as_millis() as u64
    }

    /// The maintenance client's index.
    pub fn maintainer(&self) -> usize {
        self.cfg.clients
    }

    /// The auditor's index.
    pub fn auditor(&self) -> usize {
        self.cfg.clients + 1
    }

    /// The node with id `id`.
    pub fn node(&mut self, id: NodeId) -> &mut SimNode {
        &mut self.nodes[id.get() as usize - 1]
    }

    /// Sends `request` from `client` to `node` for `owner`, with a budget
    /// of `budget_ms` (at least the current millisecond).
    pub fn call(
        &mut self,
        owner: Owner,
        client: usize,
        node: NodeId,
        request: Request,
        budget_ms: u64,
    ) {
        self.next_call += 1;
        let call = self.next_call;
        trace!(self, "#{call} c{client}→{} {}", N(node), request.kind());
        let write = match (owner, &request) {
            (Owner::Op(id), Request::Put { .. }) => self.ops.get(&id).and_then(|op| op.write()),
            _ => None,
        };
        self.calls.insert(
            call,
            Call {
                owner,
                client,
                node,
                write,
                answered: false,
                timed_out: false,
            },
        );
        self.agenda
            .push(self.now_ms + budget_ms, Event::CallTimeout(call));
        self.transmit(Message {
            call,
            client,
            node,
            payload: Payload::Request(request),
        });
    }

    /// Hands `message` to the network: lost, delivered, or delivered twice.
    pub fn transmit(&mut self, message: Message) {
        let delays: Vec<u64> = self.net.delays(&mut self.rng).collect();
        match delays.len() {
            0 => trace!(self, "#{} lost", message.call),
            1 => {}
            _ => trace!(self, "#{} duplicated", message.call),
        }
        for d in delays {
            self.agenda
                .push(self.now_ms + d, Event::Deliver(Box::new(message.clone())));
        }
    }

    /// Handles one event.
    pub fn dispatch(&mut self, event: Event) -> Result<(), String> {
        match event {
            Event::Deliver(m) => match m.payload {
                Payload::Request(ref request) => self.arrive(&m, request),
                Payload::Reply(result) => self.answer(m.call, m.client, m.node, result),
            },
            Event::CallTimeout(call) => self.call_timeout(call),
            Event::ClientTick(c) => self.client_tick(c),
            Event::Nemesis => self.nemesis(),
            Event::Restart(id) => {
                self.restart(id);
                Ok(())
            }
            Event::Flush => {
                self.flush();
                Ok(())
            }
            Event::HintTick => {
                if self.chaos {
                    self.start_pass()?;
                    self.start_moves(super::moves::PAGES_PER_TICK)?;
                    self.start_drops()?;
                    self.agenda
                        .push(self.now_ms + self.cfg.hint_pass_ms, Event::HintTick);
                }
                Ok(())
            }
            Event::Change => {
                if self.chaos {
                    self.commit_change()?;
                }
                Ok(())
            }
            Event::ExchangeTick => {
                if let (true, Some(gap)) = (self.chaos, self.cfg.exchange_pass_ms) {
                    self.start_exchanges()?;
                    self.agenda.push(self.now_ms + gap, Event::ExchangeTick);
                }
                Ok(())
            }
            Event::ChaosEnds => {
                self.end_chaos();
                Ok(())
            }
        }
    }

    /// Moves the world to its next moment: the earliest machine timer or
    /// event (a timer first on a tie). Returns false when nothing is left
    /// to happen.
    pub fn step(&mut self) -> Result<bool, String> {
        let timer = self
            .ops
            .iter()
            .map(|(&id, op)| (self.ms(op.machine.poll_timeout()), id))
            .min();
        let next = self.agenda.next_at();
        match timer {
            Some((at, op)) if next.is_none_or(|n| at <= n) => {
                self.now_ms = self.now_ms.max(at);
                self.op_timeout(op)?;
            }
            _ => {
                let Some((at, event)) = self.agenda.pop() else {
                    return Ok(false);
                };
                self.now_ms = self.now_ms.max(at);
                self.dispatch(event)?;
            }
        }
        Ok(true)
    }

    /// Runs until nothing is left to happen: no operation, no call, no
    /// event. Bounded: a world that does not settle is a violation (a
    /// machine that never finishes, events that breed forever).
    pub fn run_until_idle(&mut self) -> Result<(), String> {
        for _ in 0..STEPS_MAX {
            if !self.step()? {
                return Ok(());
            }
        }
        Err(format!("the world did not settle within {STEPS_MAX} steps"))
    }
}

/// The member entry of node `id` (every simulated node is alike).
pub fn member(id: NodeId) -> Member {
    Member {
        id,
        addr: format!("sim:{}", id.get()),
        zone: "z".into(),
        weight: 1,
    }
}

/// Each of `keys`' preference list under `doc`.
pub fn lists_of(
    doc: &Membership,
    keys: impl IntoIterator<Item = Key>,
    n: usize,
) -> BTreeMap<Key, PreferenceList> {
    keys.into_iter()
        .map(|key| {
            let list = doc.preference_list(STORE, &key, n);
            (key, list)
        })
        .collect()
}
