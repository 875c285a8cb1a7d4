//! Anti-entropy in a world: the SDK's own exchange
//! ([`crate::repair::exchange`]), run partition by partition over the
//! simulated network.
//!
//! The exchange is async code written against
//! [`crate::repair::Replicas`]. Here that trait's one call parks the
//! request on a [`Line`] and waits; the world sends it as a call of its
//! own (lost, delayed, duplicated, timed out like any other), and when the
//! answer or the timeout comes back, puts it on the line and polls the
//! exchange again, with a waker that does nothing: nothing but the world
//! ever wakes it. So the same descent, the same choice of what to fetch
//! and where to send merges, runs here and against real nodes, one call
//! at a time, in virtual time, deterministically.
//!
//! A pass exchanges every partition of the world's store between its home
//! replicas, in order. The maintenance client runs passes during the
//! faults (when the world draws them) and in every repair round (when the
//! world repairs by exchange).

use super::world::{Owner, World};
use crate::quorum::NodeFailure;
use crate::repair::{exchange, Exchanged, RepairReport, Replicas};
use quire_shared::wire::{Reply, Request};
use quire_shared::{Member, NodeId, StoreConfig};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// The one call an exchange has out: the request it asked, then the
/// answer the world hands back.
#[derive(Debug, Default)]
struct Line {
    /// Asked by the exchange, not yet sent by the world.
    asked: RefCell<Option<(NodeId, Request)>>,
    /// Handed back by the world, not yet taken by the exchange.
    answer: RefCell<Option<Result<Reply, String>>>,
}

/// The exchange's side of the line.
struct OverLine(Rc<Line>);

impl Replicas for OverLine {
    async fn call(
        &self,
        node: &Member,
        request: &Request,
        _report: &mut RepairReport,
    ) -> Result<Reply, String> {
        *self.0.asked.borrow_mut() = Some((node.id, request.clone()));
        Answered(&self.0).await
    }
}

/// Ready once the world has put an answer on the line.
struct Answered<'a>(&'a Line);

impl Future for Answered<'_> {
    type Output = Result<Reply, String>;

    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Self::Output> {
        match self.0.answer.borrow_mut().take() {
            Some(a) => Poll::Ready(a),
            None => Poll::Pending,
        }
    }
}

/// An exchange under way: its future and its line.
struct Running {
    partition: u32,
    line: Rc<Line>,
    future: Pin<Box<dyn Future<Output = (Exchanged, RepairReport)>>>,
}

/// One pass over every partition of the store.
pub struct ExchangePass {
    /// Partitions not yet started.
    left: VecDeque<u32>,
    /// The partition being exchanged.
    running: Option<Running>,
    /// Whether faults were over when the pass began (then every exchange
    /// must complete).
    calm: bool,
}

impl std::fmt::Debug for ExchangePass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExchangePass")
            .field("left", &self.left)
            .field("running", &self.running.as_ref().map(|r| r.partition))
            .finish()
    }
}

/// What polling an exchange gave.
enum Polled {
    /// It asked this of a node.
    Asked(NodeId, Request),
    /// It ended.
    Done(Exchanged, RepairReport),
}

impl Running {
    /// Polls the exchange once.
    fn poll(&mut self) -> Polled {
        let mut cx = Context::from_waker(Waker::noop());
        match self.future.as_mut().poll(&mut cx) {
            Poll::Ready((e, r)) => Polled::Done(e, r),
            Poll::Pending => {
                let asked = self.line.asked.borrow_mut().take();
                let (node, request) = asked.expect("an exchange waits only on a call it asked for");
                Polled::Asked(node, request)
            }
        }
    }
}

impl World {
    /// Starts a pass by the maintenance client (unless one runs).
    pub(super) fn start_exchanges(&mut self) -> Result<(), String> {
        if self.exchanges.is_some() {
            return Ok(());
        }
        trace!(self, "exchange pass starts");
        self.exchanges = Some(ExchangePass {
            left: (0..self.doc.partitions).collect(),
            running: None,
            calm: !self.chaos,
        });
        self.exchange_next()
    }

    /// Starts the next partition's exchange, or ends the pass.
    fn exchange_next(&mut self) -> Result<(), String> {
        let Some(pass) = self.exchanges.as_mut() else {
            return Ok(());
        };
        let Some(partition) = pass.left.pop_front() else {
            trace!(self, "exchange pass ends");
            self.exchanges = None;
            return Ok(());
        };
        let store: StoreConfig = self.doc.stores[0].clone();
        let homes: Vec<Member> = self
            .doc
            .preference_list_of(partition, usize::from(store.n))
            .iter()
            .filter_map(|id| self.doc.member(*id).cloned())
            .collect();
        let line = Rc::new(Line::default());
        let replicas = OverLine(line.clone());
        let future = Box::pin(async move {
            let mut report = RepairReport::default();
            let e = exchange(&replicas, &store, partition, &homes, None, &mut report).await;
            (e, report)
        });
        pass.running = Some(Running {
            partition,
            line,
            future,
        });
        self.exchange_poll()
    }

    /// Polls the running exchange: sends what it asks, or takes its end.
    /// An exchange that ends incomplete although the faults were over
    /// when its pass began is a violation.
    fn exchange_poll(&mut self) -> Result<(), String> {
        let Some(running) = self.exchanges.as_mut().and_then(|p| p.running.as_mut()) else {
            return Ok(());
        };
        let partition = running.partition;
        match running.poll() {
            Polled::Asked(node, request) => {
                let (client, budget) = (self.maintainer(), self.cfg.timeout_ms);
                self.call(Owner::Exchange, client, node, request, budget);
                Ok(())
            }
            Polled::Done(exchanged, report) => {
                let calm = self.exchanges.as_ref().is_some_and(|p| p.calm);
                trace!(
                    self,
                    "partition {partition} exchanged: {} segments differ, {} keys repaired, complete {}",
                    report.segments_differing,
                    report.keys_repaired,
                    exchanged.complete
                );
                self.stats.exchanges += 1;
                self.stats.exchange_repairs += report.keys_repaired;
                if calm && !exchanged.complete {
                    return Err(format!(
                        "partition {partition}'s exchange did not complete with the faults over: {:?}",
                        report.unreachable
                    ));
                }
                self.exchange_next()
            }
        }
    }

    /// The exchange's call came back (or timed out).
    pub(super) fn exchange_result(
        &mut self,
        result: Result<Reply, NodeFailure>,
    ) -> Result<(), String> {
        let Some(running) = self.exchanges.as_mut().and_then(|p| p.running.as_mut()) else {
            return Ok(());
        };
        *running.line.answer.borrow_mut() = Some(result.map_err(|f| f.to_string()));
        self.exchange_poll()
    }
}
