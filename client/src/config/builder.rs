//! [`ClientConfigBuilder`]: a client config made in code, for services
//! that take their seeds and certificates from their own configuration or
//! a secret store rather than from a `client.toml`.

use super::{ClientConfig, ReadFanout, Reads, Timeouts, TlsFiles, TlsPem, TlsSource};
use crate::error::ClientError;
use std::path::PathBuf;
use std::time::Duration;

/// A setting [`ClientConfigBuilder::build`] cannot do without.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MissingSetting {
    /// No seed address: the client would have nowhere to pull membership
    /// from.
    #[error("no seed address (add one with .seed(\"host:port\"))")]
    Seeds,
    /// No TLS identity: every node requires a client certificate.
    #[error("no TLS identity (add one with .tls_files(..) or .tls_pem(..))")]
    Tls,
}

/// Builds a [`ClientConfig`]; start with [`ClientConfig::builder`].
///
/// Timeouts not set keep their defaults ([`Timeouts::default`]).
#[derive(Clone, Debug, Default)]
#[must_use = "a builder does nothing until .build()"]
pub struct ClientConfigBuilder {
    seeds: Vec<String>,
    tls: Option<TlsSource>,
    timeouts: Timeouts,
    reads: Reads,
}

impl ClientConfigBuilder {
    /// Adds a node address (`host:port`) to pull membership from; any one
    /// that answers is enough, so name several.
    pub fn seed(mut self, addr: impl Into<String>) -> Self {
        self.seeds.push(addr.into());
        self
    }

    /// Adds several seed addresses.
    pub fn seeds<I, S>(mut self, addrs: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.seeds.extend(addrs.into_iter().map(Into::into));
        self
    }

    /// The client's certificate, key and the cluster CA as PEM files,
    /// read when the client connects (and again on
    /// [`crate::Client::reload_tls`]).
    pub fn tls_files(
        mut self,
        cert: impl Into<PathBuf>,
        key: impl Into<PathBuf>,
        ca: impl Into<PathBuf>,
    ) -> Self {
        self.tls = Some(TlsSource::Files(TlsFiles {
            cert: cert.into(),
            key: key.into(),
            ca: ca.into(),
        }));
        self
    }

    /// The client's certificate, key and the cluster CA as PEM text held
    /// in memory: nothing secret has to be written to disk.
    pub fn tls_pem(
        mut self,
        cert: impl Into<String>,
        key: impl Into<String>,
        ca: impl Into<String>,
    ) -> Self {
        self.tls = Some(TlsSource::Pem(TlsPem {
            cert: cert.into(),
            key: key.into(),
            ca: ca.into(),
        }));
        self
    }

    /// The TLS identity, however it was obtained.
    pub fn tls(mut self, tls: impl Into<TlsSource>) -> Self {
        self.tls = Some(tls.into());
        self
    }

    /// Every timeout at once.
    pub fn timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// How long a whole get or put may take, retries included (a request
    /// can override it: [`crate::RequestOptions::timeout`]).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.timeouts.request_ms = millis(timeout);
        self
    }

    /// How long establishing a QUIC connection to one node may take.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.timeouts.connect_ms = millis(timeout);
        self
    }

    /// How long one node gets to answer before it counts as down (and a
    /// put's next home replica coordinates instead).
    pub fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.timeouts.attempt_ms = millis(timeout);
        self
    }

    /// How many replicas a get asks at once ([`ReadFanout::Quorum`]
    /// unless set).
    pub fn read_fanout(mut self, fanout: ReadFanout) -> Self {
        self.reads.fanout = fanout;
        self
    }

    /// The config, or which required setting is missing
    /// ([`ClientError::Incomplete`]). Nothing is read or checked on the
    /// network here; [`crate::Client::connect`] does that.
    pub fn build(self) -> Result<ClientConfig, ClientError> {
        if self.seeds.is_empty() {
            return Err(ClientError::Incomplete(MissingSetting::Seeds));
        }
        let tls = self
            .tls
            .ok_or(ClientError::Incomplete(MissingSetting::Tls))?;
        Ok(ClientConfig {
            seeds: self.seeds,
            tls,
            timeouts: self.timeouts,
            reads: self.reads,
        })
    }
}

/// A duration as whole milliseconds, at least 1 (a zero timeout would
/// fail every request at once).
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_says_which_setting_is_missing() {
        let no_seed = ClientConfig::builder().tls_pem("c", "k", "a").build();
        assert!(matches!(
            no_seed,
            Err(ClientError::Incomplete(MissingSetting::Seeds))
        ));
        let no_tls = ClientConfig::builder().seed("127.0.0.1:1").build();
        assert!(matches!(
            no_tls,
            Err(ClientError::Incomplete(MissingSetting::Tls))
        ));
        let config = ClientConfig::builder()
            .seeds(["a:1", "b:2"])
            .tls_files("c.pem", "k.pem", "ca.pem")
            .attempt_timeout(Duration::from_millis(250))
            .connect_timeout(Duration::ZERO)
            .build()
            .unwrap();
        assert_eq!(config.seeds, ["a:1", "b:2"]);
        assert_eq!(config.timeouts.attempt_ms, 250);
        assert_eq!(config.timeouts.connect_ms, 1, "never a zero timeout");
        assert_eq!(config.timeouts.request_ms, Timeouts::default().request_ms);
        assert!(config.tls.files().is_some());
    }
}
