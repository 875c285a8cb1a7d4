//! Fail-stop after a failed fsync.
//!
//! When fsync fails, Linux may already have dropped the dirty pages it
//! could not write and marked them clean: a later fsync can then succeed
//! without the data ever reaching the disk, so every acknowledgement after
//! the first failure could be a lie (the "fsyncgate" lesson PostgreSQL
//! learned in 2018). The only safe answer is to stop: refuse every write
//! from then on, say why, and let the process exit so that systemd
//! restarts it from what is really on disk (other replicas hold what it
//! acknowledged).

use tokio::sync::watch;

/// Shared by the writer thread, the flusher and whoever waits for the node
/// to fail; cheap to clone.
#[derive(Clone)]
pub struct FailStop {
    reason: watch::Sender<Option<String>>,
}

impl Default for FailStop {
    fn default() -> Self {
        Self {
            reason: watch::channel(None).0,
        }
    }
}

impl FailStop {
    /// Records the first failure (later ones are the same story) and logs
    /// it once.
    pub fn trip(&self, reason: String) {
        self.reason.send_if_modified(|held| {
            if held.is_some() {
                return false;
            }
            tracing::error!(%reason, "fsync failed: refusing every write and stopping the node");
            *held = Some(reason);
            true
        });
    }

    /// Why the node stopped taking writes, once it has.
    pub fn reason(&self) -> Option<String> {
        self.reason.borrow().clone()
    }

    /// Resolves with the reason once the node has failed.
    pub async fn failed(&self) -> String {
        let mut rx = self.reason.subscribe();
        loop {
            if let Some(reason) = rx.borrow_and_update().clone() {
                return reason;
            }
            if rx.changed().await.is_err() {
                // Cannot happen while `self` holds the sender; wait forever
                // rather than report a failure that did not occur.
                std::future::pending::<()>().await;
            }
        }
    }
}
