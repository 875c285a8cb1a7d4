//! Long-running commands (`quire bench`, `quire maintain`, `quire
//! repair`) reload their certificate, key and CA bundle on SIGHUP, as
//! nodes do: a certificate rotated under them is taken without a restart.

use quire::Client;

/// Reloads `client`'s TLS files at every SIGHUP for as long as the
/// process runs; a reload that fails is reported and the old files stay.
pub fn on_sighup(client: Client) {
    use tokio::signal::unix::{signal, SignalKind};
    let hup = signal(SignalKind::hangup());
    let _task = tokio::spawn(async move {
        let Ok(mut hup) = hup else {
            return;
        };
        while hup.recv().await.is_some() {
            if let Err(e) = client.reload_tls() {
                eprintln!("quire: certificate reload refused, the old files stay in use: {e}");
            }
        }
    });
}
