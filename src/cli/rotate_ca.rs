//! `quire cert rotate-ca begin|switch|finish`: rotating the cluster CA of
//! a local cluster in three steps, every client reloaded between them
//! (the steps themselves: [`quire::cluster::rotate_ca`]).

use super::output::{line, print, Report};
use quire::cluster::layout::Layout;
use quire::cluster::rotate_ca::{step_name, CaStep};
use quire::{Client, ClientConfig};
use serde::Serialize;
use std::path::PathBuf;

/// `quire cert rotate-ca STEP`.
#[derive(clap::Args, Debug)]
pub struct RotateCaArgs {
    /// begin: make a new CA and trust both; switch: certificates from the
    /// new CA, and the membership document re-signed; finish: trust only
    /// the new CA. Reload every client between steps (SIGHUP, or
    /// `Client::reload_tls`).
    step: StepArg,
    /// The cluster directory.
    #[arg(long, default_value = "quire-local")]
    dir: PathBuf,
    /// Days the new certificates are valid (switch).
    #[arg(long, default_value_t = quire::certs::LEAF_DAYS_DEFAULT)]
    days: u32,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum StepArg {
    Begin,
    Switch,
    Finish,
}

/// What a step prints.
#[derive(Serialize)]
struct RotatedCaView {
    ok: bool,
    step: &'static str,
    /// Each local node: its number, and whether a running process was
    /// told to reload.
    nodes: Vec<NodeView>,
    /// Files written; copy them to machines this directory does not run.
    written: Vec<String>,
    /// The epoch of the re-signed membership document (switch).
    #[serde(skip_serializing_if = "Option::is_none")]
    resigned_epoch: Option<u64>,
    /// What to do next.
    next: &'static str,
}

#[derive(Serialize)]
struct NodeView {
    node: usize,
    reloaded: bool,
}

impl Report for RotatedCaView {
    fn text(&self, out: &mut String) {
        line(out, format_args!("rotate-ca {}: done", self.step));
        for n in &self.nodes {
            let how = if n.reloaded {
                "told to reload"
            } else {
                "not running: takes it at its next start"
            };
            line(out, format_args!("node-{}: {how}", n.node));
        }
        line(out, format_args!("{} files written", self.written.len()));
        if let Some(epoch) = self.resigned_epoch {
            line(
                out,
                format_args!(
                    "membership re-signed by the new operator certificate (epoch {epoch})"
                ),
            );
        }
        line(out, format_args!("next: {}", self.next));
    }
}

/// Runs one step.
pub async fn rotate_ca(args: RotateCaArgs, json: bool) -> anyhow::Result<()> {
    let layout = Layout::new(&args.dir);
    let step = match args.step {
        StepArg::Begin => CaStep::Begin,
        StepArg::Switch => CaStep::Switch,
        StepArg::Finish => CaStep::Finish,
    };
    if step == CaStep::Finish && layout.ca_step() == CaStep::Finish {
        // Dropping the old CA is safe only once no document a client may
        // be handed is signed under it alone.
        let client = operator(&layout).await?;
        let verifier = quire_net::seal::Verifier::load(&layout.next_ca_file())?;
        if let Err(e) = verifier.verify(&client.membership()) {
            anyhow::bail!(
                "not finished: the membership document does not verify under the new CA alone ({e}); run `quire cert rotate-ca switch` again"
            );
        }
        client.close();
    }
    let done = layout.rotate_ca(step, args.days)?;
    let mut resigned_epoch = None;
    if step == CaStep::Switch {
        let client = operator(&layout).await?;
        let (doc, missed) = client.reseal_membership().await?;
        for m in &missed {
            eprintln!("quire: warning: {m} (it will learn of the document from clients)");
        }
        client.close();
        resigned_epoch = Some(doc.epoch);
    }
    let next = match step {
        CaStep::Begin => "reload every client, then `quire cert rotate-ca switch`",
        CaStep::Switch => "reload every client (and give applications their new certificates), then `quire cert rotate-ca finish`",
        CaStep::Finish => "reload every client: only the new CA is trusted now",
    };
    let view = RotatedCaView {
        ok: true,
        step: step_name(step),
        nodes: done
            .nodes
            .iter()
            .map(|&(node, _, reloaded)| NodeView { node, reloaded })
            .collect(),
        written: done
            .written
            .iter()
            .map(|p| p.display().to_string())
            .collect(),
        resigned_epoch,
        next,
    };
    print(&view, json)
}

/// A client with the directory's operator identity.
async fn operator(layout: &Layout) -> anyhow::Result<Client> {
    let config = ClientConfig::load(&layout.client_config())?;
    Ok(Client::connect(config).await?)
}
