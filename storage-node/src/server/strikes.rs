//! Strikes against a peer whose request frames cannot be read as
//! requests: announced past their limit, or garbled.
//!
//! Each such frame is answered with its typed refusal, as any bad input
//! is; but a peer sending them over and over makes the node receive and
//! decrypt what it sends before the refusal reaches it (a document past
//! its cap sent whole, again and again, was 1.2 GiB in 2 s, the node's
//! core spent on it instead of on honest requests). So each strike also
//! pauses the connection it came on: the node takes no new request stream
//! from it for a while, the pause doubling with each strike from the same
//! IP address within [`FORGIVEN_AFTER`]. While paused, QUIC flow control
//! holds what the peer may send to what its open streams may carry.
//! After [`CLOSE_AFTER_STRIKES`] strikes in a row from the address, the
//! connection is closed; a new connection from an address with a recent
//! strike gets small windows from its handshake on
//! ([`STRUCK_WINDOW_BYTES`]) and starts in the pause its address earned,
//! so reconnecting buys nothing. Requests already taken carry on.
//!
//! A frame cut short (a client that gave up on a request resets its
//! stream) or not sent within the read deadline is no strike: honest
//! clients do both, and neither makes the node take in more than it
//! reads. An honest client earns a strike only by sending a frame past
//! the node's frame limit (a value over 16 MiB by default).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The first pause after a strike.
pub const FIRST_PAUSE: Duration = Duration::from_millis(20);
/// The longest pause. Each connection of a flooding peer carries one
/// frame per pause, so this bounds how often it can make the node do a
/// handshake by reconnecting: at 640 ms, a peer reconnecting for every
/// frame on 8 connections still moved an honest client's p99.9 by 2.5x
/// to 3.4x; at this, by 0.95x to 1.97x. A peer that strikes by mistake
/// (a bug, not an attack) waits seconds at most, and is forgiven after
/// [`FORGIVEN_AFTER`] without a strike.
pub const LONGEST_PAUSE: Duration = Duration::from_millis(2_560);
/// A strike this long after the address's previous one starts again from
/// [`FIRST_PAUSE`]; a new connection from the address gets the small
/// windows until then.
pub const FORGIVEN_AFTER: Duration = Duration::from_secs(10);
/// Strikes in a row from one address after which the connection they
/// came on is closed (with [`STRUCK_CONNECTION_CODE`]).
pub const CLOSE_AFTER_STRIKES: u32 = 4;
/// QUIC application error code of a connection closed for its strikes.
pub const STRUCK_CONNECTION_CODE: u32 = 3;
/// The receive window of a connection from an address with a recent
/// strike: QUIC lets its peer send no more than this unread.
pub const STRUCK_WINDOW_BYTES: u32 = 256 << 10;
/// Its window per stream.
pub const STRUCK_STREAM_WINDOW_BYTES: u32 = 64 << 10;
/// Addresses remembered at most; past it, strikes from new addresses
/// still pause their own connection but are not remembered.
const ADDRESSES_MAX: usize = 4096;

/// The last strike of one address: when, the pause it earned, and how
/// many strikes in a row it ends.
#[derive(Clone, Copy, Debug)]
struct Strike {
    at: Instant,
    pause: Duration,
    in_a_row: u32,
}

/// What a strike earns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Penalty {
    /// No new stream is taken from the connection for this long.
    pub pause: Duration,
    /// The connection is to be closed.
    pub close: bool,
}

/// Every address's last strike, shared by all connections of the node.
#[derive(Debug, Default)]
pub struct PeerStrikes {
    peers: Mutex<HashMap<IpAddr, Strike>>,
}

impl PeerStrikes {
    /// Records a strike from `ip` at `now` and returns what it earns.
    pub fn strike(&self, ip: IpAddr, now: Instant) -> Penalty {
        let mut peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        let strike = match peers.get(&ip) {
            Some(last) if now.saturating_duration_since(last.at) < FORGIVEN_AFTER => Strike {
                at: now,
                pause: (last.pause * 2).min(LONGEST_PAUSE),
                in_a_row: last.in_a_row.saturating_add(1),
            },
            _ => Strike {
                at: now,
                pause: FIRST_PAUSE,
                in_a_row: 1,
            },
        };
        if peers.len() >= ADDRESSES_MAX && !peers.contains_key(&ip) {
            peers.retain(|_, s| now.saturating_duration_since(s.at) < FORGIVEN_AFTER);
        }
        if peers.len() < ADDRESSES_MAX || peers.contains_key(&ip) {
            peers.insert(ip, strike);
        }
        Penalty {
            pause: strike.pause,
            close: strike.in_a_row >= CLOSE_AFTER_STRIKES,
        }
    }

    /// For an address struck within [`FORGIVEN_AFTER`] of `now`: when its
    /// pause ends (perhaps already).
    pub fn standing(&self, ip: IpAddr, now: Instant) -> Option<Instant> {
        let peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        peers
            .get(&ip)
            .filter(|s| now.saturating_duration_since(s.at) < FORGIVEN_AFTER)
            .map(|s| s.at + s.pause)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, n])
    }

    #[test]
    fn pauses_double_up_to_the_longest_and_are_forgiven_after_a_quiet_spell() {
        let s = PeerStrikes::default();
        let t0 = Instant::now();
        let first = Penalty {
            pause: FIRST_PAUSE,
            close: false,
        };
        assert_eq!(s.strike(ip(2), t0), first);
        let penalties: Vec<Penalty> = (1..10)
            .map(|i| s.strike(ip(2), t0 + Duration::from_millis(i)))
            .collect();
        let pauses: Vec<Duration> = penalties.iter().map(|p| p.pause).collect();
        assert_eq!(pauses[0], FIRST_PAUSE * 2);
        assert_eq!(pauses[1], FIRST_PAUSE * 4);
        assert_eq!(*pauses.last().unwrap(), LONGEST_PAUSE);
        assert!(pauses.windows(2).all(|w| w[0] <= w[1]));
        // The strike that makes CLOSE_AFTER_STRIKES in a row, and every
        // one after it, closes the connection.
        let closing = CLOSE_AFTER_STRIKES as usize - 2;
        assert!(penalties[..closing].iter().all(|p| !p.close));
        assert!(penalties[closing..].iter().all(|p| p.close));
        // Another address has its own ladder.
        assert_eq!(s.strike(ip(3), t0), first);
        let later = t0 + FORGIVEN_AFTER + Duration::from_secs(1);
        assert_eq!(s.standing(ip(2), later), None);
        assert_eq!(s.strike(ip(2), later), first);
    }

    #[test]
    fn a_struck_address_stands_until_forgiven_and_a_clean_one_never_does() {
        let s = PeerStrikes::default();
        let t0 = Instant::now();
        assert_eq!(s.standing(ip(2), t0), None);
        s.strike(ip(2), t0);
        assert_eq!(s.standing(ip(2), t0), Some(t0 + FIRST_PAUSE));
        let calm = t0 + Duration::from_secs(5);
        assert_eq!(s.standing(ip(2), calm), Some(t0 + FIRST_PAUSE));
        assert_eq!(s.standing(ip(2), t0 + FORGIVEN_AFTER), None);
        assert_eq!(s.standing(ip(4), t0), None);
    }

    #[test]
    fn the_addresses_remembered_are_bounded() {
        let s = PeerStrikes::default();
        let t0 = Instant::now();
        for i in 0..(ADDRESSES_MAX as u32 + 100) {
            s.strike(IpAddr::from(i.to_be_bytes()), t0);
        }
        assert_eq!(s.peers.lock().unwrap().len(), ADDRESSES_MAX);
        // Once the old strikes are forgiven, new addresses are kept again.
        let later = t0 + FORGIVEN_AFTER;
        s.strike(ip(9), later);
        assert_eq!(s.standing(ip(9), later), Some(later + FIRST_PAUSE));
        assert_eq!(s.peers.lock().unwrap().len(), 1);
    }
}
