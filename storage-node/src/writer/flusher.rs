//! The flusher thread: fsyncs commits of `buffered` stores on an interval.
//!
//! A batch with no `sync` write is committed with its pages flushed but
//! not its meta page, so the commit has reached the OS but maybe not the
//! disk. Rather than flush each batch's meta page, the writer marks the environment
//! dirty and this thread makes one fsync per interval (the next commit's
//! own fsync flushes it too): a process crash loses nothing, an OS crash
//! or power loss at most the last interval. It lives apart from the queue because it runs on
//! its own clock, not on the arrival of writes.

use super::failstop::FailStop;
use crate::storage::Storage;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// Handle to the flusher thread, owned by the writer thread.
pub(super) struct Flusher {
    /// What the two threads share, and the condition the flusher sleeps on
    /// (woken early only to stop).
    state: Arc<(Mutex<FlushState>, Condvar)>,
    /// Joined by [`Flusher::stop`]; `None` once joined.
    thread: Option<std::thread::JoinHandle<()>>,
}

#[derive(Default)]
struct FlushState {
    /// A commit since the last fsync has not reached the disk for sure.
    dirty: bool,
    /// The writer is shutting down: flush what is left and exit.
    stopping: bool,
}

impl Flusher {
    /// Starts the thread, fsyncing `storage` every `interval` when dirty.
    pub(super) fn start(storage: Storage, interval: Duration, fail_stop: FailStop) -> Self {
        let state: Arc<(Mutex<FlushState>, Condvar)> = Arc::default();
        let shared = state.clone();
        let thread = std::thread::Builder::new()
            .name("quire-flusher".into())
            .spawn(move || loop {
                let (lock, wake) = &*shared;
                let guard = lock.lock().unwrap_or_else(|e| e.into_inner());
                let (mut guard, _) = wake
                    .wait_timeout(guard, interval)
                    .unwrap_or_else(|e| e.into_inner());
                let flush = std::mem::take(&mut guard.dirty);
                let stopping = guard.stopping;
                drop(guard);
                if flush {
                    if let Err(e) = storage.sync() {
                        fail_stop.trip(format!("flushing buffered writes: {e}"));
                    }
                }
                if stopping {
                    return;
                }
            })
            .expect("spawning the flusher thread");
        Self {
            state,
            thread: Some(thread),
        }
    }

    /// Records a commit that was not fsynced; the next tick flushes it.
    pub(super) fn mark_dirty(&self) {
        self.state.0.lock().unwrap_or_else(|e| e.into_inner()).dirty = true;
    }

    /// Flushes what is left and stops the thread.
    pub(super) fn stop(mut self) {
        {
            let mut s = self.state.0.lock().unwrap_or_else(|e| e.into_inner());
            s.stopping = true;
        }
        self.state.1.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
