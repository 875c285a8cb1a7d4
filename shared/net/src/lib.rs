//! `quire-net`: what both ends of a Quire connection must agree on, written
//! once.
//!
//! The client and the node each set up TLS, read a TOML config and move
//! frames over QUIC streams. With a copy on each side, a change to one copy
//! (a TLS version, the ALPN, a verification rule, how relative paths
//! resolve, when a frame's length is checked) leaves the other behind
//! without a compile error, and the mismatch surfaces as failed handshakes
//! or refused frames between mixed builds. Here each rule has one
//! definition, and both sides call it.
//!
//! This is not part of `quire-shared` because it does I/O (files, QUIC
//! streams); `quire-shared` stays pure so its wire types and limits can be
//! tested and fuzzed without a runtime. The byte format itself stays there
//! ([`quire_shared::wire`]): this crate only moves those bytes.
//!
//! # Layout
//!
//! - [`tls`]: PEM loading, the crypto provider, and the TLS rules: 1.3
//!   only, ALPN `quire/N`, each peer verified against the cluster CA.
//! - [`config`]: TOML config loading, with relative paths resolved against
//!   the file's directory.
//! - [`frame`]: one length-prefixed frame read from or written to a QUIC
//!   stream, its length checked before anything is allocated and its
//!   buffer grown only as bytes arrive (optionally within a byte budget).
//! - [`identity`]: the role and name a peer's certificate carries.
//! - [`udp`]: the endpoint's socket, with a receive buffer that absorbs
//!   bursts.
//! - [`validity`]: when a certificate expires.
//! - [`seal`]: signing membership documents as an admin, and checking
//!   any document's seal.

pub mod config;
pub mod frame;
pub mod identity;
pub mod seal;
pub mod tls;
pub mod udp;
pub mod validity;

#[cfg(test)]
mod test_ca;
#[cfg(test)]
mod tests;
