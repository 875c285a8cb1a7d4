//! Certificates close to their end, for `quire status`: the client's own,
//! the cluster CA, and each node's (as seen at the handshake).
//!
//! An expired certificate fails every handshake, so a cluster whose
//! certificates lapse stops answering all at once; a warning a month
//! ahead leaves time to issue new ones.

use quire::Client;
use serde::Serialize;

/// Certificates expiring within this many days are reported.
pub const WARN_DAYS: i64 = 30;

/// A certificate that expires soon (or has expired).
#[derive(Clone, Debug, Serialize)]
pub struct Expiring {
    /// Which certificate: `client`, `CA` or `node ID`.
    pub certificate: String,
    /// Whole days left; negative once expired.
    pub days_left: i64,
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The certificates this client knows of that expire within
/// [`WARN_DAYS`]: its own, the CA's, and those of the nodes it has
/// connected to (call after requests to every node).
pub fn expiring(client: &Client) -> Vec<Expiring> {
    let tls = quire_net::tls::TlsMaterial::load(&client.config().tls).ok();
    let not_after = |c: Option<&_>| c.and_then(|c| quire_net::validity::not_after_unix(c));
    let mut found = vec![
        (
            "client".to_string(),
            not_after(tls.as_ref().and_then(|t| t.certs.first())),
        ),
        (
            "CA".to_string(),
            not_after(tls.as_ref().and_then(|t| t.ca.first())),
        ),
    ];
    for m in &client.membership().members {
        found.push((
            format!("node {}", m.id),
            client.node_certificate_not_after(&m.addr),
        ));
    }
    let now = now_unix();
    found
        .into_iter()
        .filter_map(|(certificate, not_after)| {
            let days_left = (not_after? - now).div_euclid(86_400);
            (days_left < WARN_DAYS).then_some(Expiring {
                certificate,
                days_left,
            })
        })
        .collect()
}

/// The warning line for one certificate.
pub fn warning(e: &Expiring) -> String {
    if e.days_left < 0 {
        format!("warning: the {} certificate has expired", e.certificate)
    } else {
        format!(
            "warning: the {} certificate expires in {} days: issue a new one (`quire cert issue`)",
            e.certificate, e.days_left
        )
    }
}
