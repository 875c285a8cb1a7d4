//! [`RequestOptions`]: per-request R, W and timeout.
//!
//! A store's (N, R, W) suit most requests; some want otherwise: a page
//! that can show a slightly old cart reads at R = 1 for latency, a payment
//! record writes at W = N, a health check gives up sooner. The options
//! override the store's settings and the client's request timeout for one
//! call (or for every call through a [`crate::Store`] made
//! [`crate::Store::with_options`]), and are checked against the store's N
//! before anything is sent.

use crate::error::ClientError;
use std::time::Duration;

/// Overrides for one request; anything left `None` keeps the store's (R,
/// W) or the client's request timeout.
///
/// ```
/// use quire_client::RequestOptions;
/// use std::time::Duration;
///
/// let fast_read = RequestOptions::new().r(1).timeout(Duration::from_millis(300));
/// assert_eq!(fast_read.r, Some(1));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RequestOptions {
    /// Replies a get waits for, between 1 and the store's N.
    pub r: Option<u8>,
    /// Acknowledgements a put or delete waits for, between 1 and N.
    pub w: Option<u8>,
    /// The whole request's time limit, retries included (not zero).
    pub timeout: Option<Duration>,
}

impl RequestOptions {
    /// No overrides: the store's R and W, the client's timeout.
    pub fn new() -> Self {
        Self::default()
    }

    /// Read quorum for this request.
    pub fn r(mut self, r: u8) -> Self {
        self.r = Some(r);
        self
    }

    /// Write quorum for this request.
    pub fn w(mut self, w: u8) -> Self {
        self.w = Some(w);
        self
    }

    /// Time limit for this request.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The read quorum to use for a store with `r` and `n`.
    pub(crate) fn read_quorum(&self, r: u8, n: u8) -> Result<usize, ClientError> {
        quorum("r", self.r, r, n)
    }

    /// The write quorum to use for a store with `w` and `n`.
    pub(crate) fn write_quorum(&self, w: u8, n: u8) -> Result<usize, ClientError> {
        quorum("w", self.w, w, n)
    }

    /// The request timeout to use, given the client's.
    pub(crate) fn request_timeout(&self, client: Duration) -> Result<Duration, ClientError> {
        match self.timeout {
            Some(t) if t.is_zero() => Err(ClientError::InvalidOption {
                option: "timeout",
                value: 0,
                max: u64::MAX,
            }),
            Some(t) => Ok(t),
            None => Ok(client),
        }
    }
}

/// `wanted` if it is between 1 and `n`, else the store's `configured`.
fn quorum(
    option: &'static str,
    wanted: Option<u8>,
    configured: u8,
    n: u8,
) -> Result<usize, ClientError> {
    match wanted {
        None => Ok(configured as usize),
        Some(v) if v >= 1 && v <= n => Ok(v as usize),
        Some(v) => Err(ClientError::InvalidOption {
            option,
            value: u64::from(v),
            max: u64::from(n),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quorums_outside_one_to_n_are_refused_by_name() {
        let o = RequestOptions::new().r(0).w(4);
        assert!(matches!(
            o.read_quorum(2, 3),
            Err(ClientError::InvalidOption {
                option: "r",
                value: 0,
                max: 3
            })
        ));
        assert!(matches!(
            o.write_quorum(2, 3),
            Err(ClientError::InvalidOption {
                option: "w",
                value: 4,
                max: 3
            })
        ));
        let o = RequestOptions::new().r(3).w(1);
        assert_eq!(o.read_quorum(2, 3).unwrap(), 3);
        assert_eq!(o.write_quorum(2, 3).unwrap(), 1);
        assert_eq!(RequestOptions::new().read_quorum(2, 3).unwrap(), 2);
        let zero = RequestOptions::new().timeout(Duration::ZERO);
        assert!(zero.request_timeout(Duration::from_secs(1)).is_err());
        assert_eq!(
            RequestOptions::new()
                .request_timeout(Duration::from_secs(1))
                .unwrap(),
            Duration::from_secs(1)
        );
    }
}
