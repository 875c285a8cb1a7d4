//! A new client's first membership document, from its seeds.
//!
//! Seeds are asked in order, but a seed that has not answered within
//! [`SEED_HEDGE`] does not hold up the next one: the next is asked beside
//! it (a failure asks the next at once), and the first valid document
//! wins. A dead first seed, whose QUIC handshake only fails at the connect
//! timeout, so costs a cold `quire` command [`SEED_HEDGE`] instead of that
//! timeout; a healthy first seed still answers alone, so a fleet of
//! starting clients does not ask every seed.

use crate::error::ClientError;
use crate::transport::Transport;
use futures_util::stream::{FuturesUnordered, StreamExt};
use quire_net::seal::Verifier;
use quire_shared::wire::{ErrorCode, Reply, Request, Response};
use quire_shared::Membership;
use std::time::Duration;

/// How long a seed has to answer before the next one is asked as well:
/// well above a loopback or LAN round trip and a TLS handshake, well below
/// the connect timeout a dead node costs.
pub const SEED_HEDGE: Duration = Duration::from_millis(250);

/// What one seed's answer means.
enum Answer {
    /// A document that verified.
    Document(Box<Membership>),
    /// Refused for who this client is: every seed will say the same.
    Forbidden(String),
    /// No usable document, and why.
    Unusable(String),
}

/// Reads `seed`'s answer.
fn judge(
    seed: &str,
    verifier: &Verifier,
    answer: Result<Response, crate::transport::TransportError>,
) -> Answer {
    match answer {
        Ok(Response {
            result: Ok(Reply::Membership(Some(doc))),
            ..
        }) => match verifier.verify(&doc) {
            Ok(()) => Answer::Document(Box::new(doc)),
            Err(e) => Answer::Unusable(format!("{seed}: its membership document is refused: {e}")),
        },
        Ok(Response {
            result: Ok(Reply::Membership(None)),
            ..
        }) => Answer::Unusable(format!("{seed}: no membership document yet")),
        Ok(Response { result: Err(e), .. }) if e.code == ErrorCode::Forbidden => {
            Answer::Forbidden(e.message)
        }
        Ok(other) => Answer::Unusable(format!("{seed}: unexpected answer {:?}", other.result)),
        Err(e) => Answer::Unusable(e.to_string()),
    }
}

/// The first valid membership document a seed gives, asking the seeds as
/// the module doc says; every seed's failure when none does.
pub(crate) async fn first_document(
    transport: &Transport,
    seeds: &[String],
    verifier: &Verifier,
    timeout: Duration,
) -> Result<Membership, ClientError> {
    let ask = |seed: &String| {
        let seed = seed.clone();
        async move {
            let answer = transport
                .call(&seed, &Request::GetMembership, timeout)
                .await;
            (seed, answer)
        }
    };
    let mut waiting = seeds.iter();
    let mut asked = FuturesUnordered::new();
    let mut tried = Vec::new();
    loop {
        if asked.is_empty() {
            match waiting.next() {
                Some(seed) => asked.push(ask(seed)),
                None => return Err(ClientError::NoSeedReachable(tried)),
            }
        }
        let hedge = tokio::time::sleep(SEED_HEDGE);
        tokio::select! {
            Some((seed, answer)) = asked.next() => match judge(&seed, verifier, answer) {
                Answer::Document(doc) => return Ok(*doc),
                Answer::Forbidden(message) => return Err(ClientError::Forbidden { message }),
                Answer::Unusable(why) => tried.push(why),
            },
            () = hedge => {
                if let Some(seed) = waiting.next() {
                    asked.push(ask(seed));
                }
            }
        }
    }
}
