//! The SDK's async maintenance code, run inside a world.
//!
//! Hint delivery, anti-entropy exchanges and a transfer's pages are async
//! functions written against [`crate::repair::Replicas`]. Here that
//! trait's one call
//! parks its request on the task's [`Line`] and waits; the world sends it
//! as a call of its own (lost, delayed, duplicated, timed out like any
//! other) and, when the answer or the timeout comes back, puts it on the
//! line and polls the task again, with a waker that does nothing: nothing
//! but the world ever wakes a task. So the same code that repairs and
//! moves data in a cluster runs here, in virtual time, deterministically,
//! with several calls out at once where it makes them (a transfer stores
//! a page while it scans the next).
//!
//! A task ends with a [`TaskEnd`], which the world reads
//! ([`super::hints`], [`super::exchange`], [`super::moves`]).

use super::world::{Owner, World};
use crate::quorum::NodeFailure;
use crate::repair::{Exchanged, NoReply, RepairReport, Replicas};
use quire_shared::wire::{Reply, Request};
use quire_shared::{Member, NodeId};
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// What a finished task hands the world.
pub enum TaskEnd {
    /// An anti-entropy pass: each partition's outcome and report.
    Exchanges(Vec<(u32, Exchanged, RepairReport)>),
    /// A hint-delivery pass.
    Hints(crate::maintain::MaintenanceReport),
    /// A membership change's transfers (and closing exchanges).
    Moves(super::moves::MovesEnd),
    /// Old owners' copies handed off and dropped.
    Drops(crate::change::DropReport),
}

/// A task's calls: asked by the task, answered by the world, each by the
/// task's own call number.
#[derive(Default)]
pub struct Line {
    next: Cell<u64>,
    asked: RefCell<Vec<(u64, NodeId, Request)>>,
    answers: RefCell<BTreeMap<u64, Result<Reply, NoReply>>>,
    /// Lines for the world's trace, written by the task as it goes.
    notes: RefCell<Vec<String>>,
}

impl Line {
    /// Records `note` in the world's trace at the task's next poll.
    pub fn note(&self, note: String) {
        self.notes.borrow_mut().push(note);
    }
}

/// The task's side of its line: what it calls replicas through.
#[derive(Clone)]
pub struct OverLine {
    /// The line.
    pub line: Rc<Line>,
    /// Virtual wall-clock milliseconds (progress records are stamped).
    pub clock: Rc<Cell<u64>>,
}

impl Replicas for OverLine {
    async fn ask(&self, node: &Member, request: &Request) -> Result<Reply, NoReply> {
        let id = self.line.next.get();
        self.line.next.set(id + 1);
        self.line
            .asked
            .borrow_mut()
            .push((id, node.id, request.clone()));
        Answered(&self.line, id).await
    }

    fn wall_ms(&self) -> u64 {
        self.clock.get()
    }
}

/// Ready once the world has put answer `.1` on the line.
struct Answered<'a>(&'a Line, u64);

impl Future for Answered<'_> {
    type Output = Result<Reply, NoReply>;

    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Self::Output> {
        match self.0.answers.borrow_mut().remove(&self.1) {
            Some(a) => Poll::Ready(a),
            None => Poll::Pending,
        }
    }
}

/// A task under way.
pub struct Task {
    line: Rc<Line>,
    future: Pin<Box<dyn Future<Output = TaskEnd>>>,
}

impl World {
    /// A fresh line for a task, with the world's clock.
    pub(super) fn over_line(&self) -> OverLine {
        OverLine {
            line: Rc::new(Line::default()),
            clock: self.wall.clone(),
        }
    }

    /// Starts `future`, whose calls go through `over.line`: `started`
    /// records its id in the world, then it is polled a first time.
    pub(super) fn spawn_task(
        &mut self,
        over: &OverLine,
        future: impl Future<Output = TaskEnd> + 'static,
        started: impl FnOnce(&mut World, u64),
    ) -> Result<(), String> {
        self.next_task += 1;
        let id = self.next_task;
        self.tasks.insert(
            id,
            Task {
                line: over.line.clone(),
                future: Box::pin(future),
            },
        );
        started(self, id);
        self.poll_task(id)
    }

    /// Polls task `id`: sends what it asked, or takes its end.
    fn poll_task(&mut self, id: u64) -> Result<(), String> {
        let Some(task) = self.tasks.get_mut(&id) else {
            return Ok(());
        };
        self.wall.set(1_000_000 + self.now_ms);
        let mut cx = Context::from_waker(Waker::noop());
        let polled = task.future.as_mut().poll(&mut cx);
        let line = task.line.clone();
        for note in line.notes.borrow_mut().drain(..) {
            trace!(self, "{note}");
        }
        let asked: Vec<_> = line.asked.borrow_mut().drain(..).collect();
        for (slot, node, request) in asked {
            let (client, budget) = (self.maintainer(), self.cfg.timeout_ms);
            self.call(Owner::Task(id, slot), client, node, request, budget);
        }
        match polled {
            Poll::Pending => Ok(()),
            Poll::Ready(end) => {
                self.tasks.remove(&id);
                self.task_ended(id, end)
            }
        }
    }

    /// A task's call came back (or timed out).
    pub(super) fn task_result(
        &mut self,
        (id, slot): (u64, u64),
        result: Result<Reply, NodeFailure>,
    ) -> Result<(), String> {
        let Some(task) = self.tasks.get(&id) else {
            return Ok(());
        };
        let answer = result.map_err(|f| NoReply {
            code: match &f {
                NodeFailure::Refused(e) => Some(e.code),
                _ => None,
            },
            message: f.to_string(),
        });
        task.line.answers.borrow_mut().insert(slot, answer);
        self.poll_task(id)
    }

    /// What a finished task's end means for the world.
    fn task_ended(&mut self, id: u64, end: TaskEnd) -> Result<(), String> {
        match end {
            TaskEnd::Exchanges(done) => self.exchanges_ended(id, done),
            TaskEnd::Hints(report) => self.hints_ended(report),
            TaskEnd::Moves(end) => self.moves_ended(end),
            TaskEnd::Drops(report) => self.drops_ended(report),
        }
    }
}
