//! `quire cert revoke|rotate`, `quire grant` and `quire revoke`: what
//! each identity may do (issuing identities: [`super::issue`]).
//!
//! Certificates are made from the cluster directory's CA (only the
//! operator holding `ca-key.pem` can issue them); grants are changes of
//! the membership document, so only an admin identity can make them.

use super::output::{line, print, Report};
use super::{connect, ConfigArg};
use quire::cluster::layout::Layout;
use quire::shared::access::{Access, Serial};
use serde::Serialize;
use std::path::PathBuf;

/// `quire cert ...`.
#[derive(clap::Subcommand, Debug)]
pub enum CertCommand {
    /// Issue a certificate from the cluster CA. A client or admin gets
    /// DIR/clients/NAME/ with client.toml, ready for `--config`; a node
    /// gets DIR/nodes/NAME/ with a certificate naming a new node id.
    Issue(super::issue::IssueArgs),
    /// Start a cluster whose nodes run on hosts of their own: a new cluster
    /// id, CA and admin identity in DIR (client.toml names the --seed
    /// addresses). Then `cert issue node NAME --listen ADDR` per host, and
    /// `cluster form` once the nodes run (docs/deploy.md).
    Init(super::issue::InitArgs),
    /// Revoke a certificate: every node refuses it from its next request
    /// on (admin only; kept in the membership document). Name it by its
    /// PEM file or its serial number.
    Revoke(RevokeCertArgs),
    /// Give every node of a local cluster, and its operator, a new
    /// certificate from the cluster CA (nodes keep their ids), and tell
    /// running nodes to reload (SIGHUP): no restart, no failed request.
    Rotate(RotateArgs),
    /// Rotate the cluster CA of a local cluster in three steps: begin
    /// (trust a new CA beside the old), switch (certificates from the new
    /// CA, membership re-signed), finish (trust only the new CA). Reload
    /// every client between steps.
    RotateCa(super::rotate_ca::RotateCaArgs),
}

/// `quire cert rotate`.
#[derive(clap::Args, Debug)]
pub struct RotateArgs {
    /// The cluster directory.
    #[arg(long, default_value = "quire-local")]
    dir: PathBuf,
    /// Days the new certificates are valid.
    #[arg(long, default_value_t = quire::certs::LEAF_DAYS_DEFAULT)]
    days: u32,
}

/// What `cert rotate` prints.
#[derive(Serialize)]
struct RotatedView {
    ok: bool,
    /// Each node: id and whether a running process was told to reload.
    nodes: Vec<RotatedNode>,
}

#[derive(Serialize)]
struct RotatedNode {
    node: usize,
    id: String,
    reloaded: bool,
}

impl Report for RotatedView {
    fn text(&self, out: &mut String) {
        for n in &self.nodes {
            let how = if n.reloaded {
                "running: told to reload"
            } else {
                "not running: takes it at its next start"
            };
            line(
                out,
                format_args!("node-{} ({}): new certificate, {how}", n.node, n.id),
            );
        }
        line(out, format_args!("operator: new admin certificate"));
    }
}

fn rotate(args: RotateArgs, json: bool) -> anyhow::Result<()> {
    let rotated = Layout::new(&args.dir).rotate(args.days)?;
    let nodes = rotated
        .nodes
        .into_iter()
        .map(|(node, id, reloaded)| RotatedNode {
            node,
            id: id.to_string(),
            reloaded,
        })
        .collect();
    print(&RotatedView { ok: true, nodes }, json)
}

/// `quire cert revoke FILE | --serial HEX`.
#[derive(clap::Args, Debug)]
pub struct RevokeCertArgs {
    /// The certificate's PEM file (e.g. DIR/clients/NAME/client.pem).
    #[arg(required_unless_present = "serial", conflicts_with = "serial")]
    file: Option<PathBuf>,
    /// The certificate's serial number, in hex.
    #[arg(long)]
    serial: Option<String>,
}

/// What `cert revoke` prints.
#[derive(Serialize)]
struct RevokedView {
    ok: bool,
    serial: String,
    epoch: u64,
}

impl Report for RevokedView {
    fn text(&self, out: &mut String) {
        line(
            out,
            format_args!(
                "certificate {} is revoked (epoch {}): nodes refuse it from its next request",
                self.serial, self.epoch
            ),
        );
    }
}

fn serial_to_revoke(args: &RevokeCertArgs) -> anyhow::Result<Serial> {
    if let Some(hex) = &args.serial {
        let bytes = (0..hex.len())
            .step_by(2)
            .map(|i| {
                hex.get(i..i + 2)
                    .and_then(|b| u8::from_str_radix(b, 16).ok())
            })
            .collect::<Option<Vec<u8>>>()
            .filter(|b| !b.is_empty())
            .ok_or_else(|| anyhow::anyhow!("{hex:?} is not a serial number in hex"))?;
        return Ok(Serial(bytes));
    }
    let file = args
        .file
        .as_ref()
        .expect("clap requires a file or --serial");
    let chain = quire_net::tls::load_certs(file, "certificate")?;
    Ok(quire_net::identity::serial_of(&chain[0])?)
}

async fn revoke_cert(args: RevokeCertArgs, config: ConfigArg, json: bool) -> anyhow::Result<()> {
    let serial = serial_to_revoke(&args)?;
    let client = connect(config).await?;
    let (doc, missed) = client.revoke_certificate(serial.clone()).await?;
    for m in &missed {
        eprintln!("quire: warning: {m} (it will learn of the revocation from clients)");
    }
    client.close();
    print(
        &RevokedView {
            ok: true,
            serial: serial.to_string(),
            epoch: doc.epoch,
        },
        json,
    )
}

/// `quire cert ...`.
pub async fn cert(command: CertCommand, config: ConfigArg, json: bool) -> anyhow::Result<()> {
    match command {
        CertCommand::Issue(args) => super::issue::issue(args, json).await,
        CertCommand::Init(args) => super::issue::init(args, json),
        CertCommand::Revoke(args) => revoke_cert(args, config, json).await,
        CertCommand::Rotate(args) => rotate(args, json),
        CertCommand::RotateCa(args) => super::rotate_ca::rotate_ca(args, json).await,
    }
}

/// `quire grant NAME --store S --read|--write`.
#[derive(clap::Args, Debug)]
pub struct GrantArgs {
    /// The client identity's name (as issued with `quire cert issue`).
    name: String,
    /// The store.
    #[arg(long)]
    store: String,
    /// Read only: get, Merkle digests, scans.
    #[arg(long, conflicts_with = "write", required_unless_present = "write")]
    read: bool,
    /// Read and write: also put, delete, hint delivery, repair.
    #[arg(long)]
    write: bool,
}

/// `quire revoke NAME --store S`.
#[derive(clap::Args, Debug)]
pub struct RevokeArgs {
    /// The client identity's name.
    name: String,
    /// The store.
    #[arg(long)]
    store: String,
}

/// What `grant` and `revoke` print.
#[derive(Serialize)]
struct GrantView {
    ok: bool,
    name: String,
    store: String,
    access: Option<&'static str>,
    epoch: u64,
}

impl Report for GrantView {
    fn text(&self, out: &mut String) {
        match self.access {
            Some(a) => line(
                out,
                format_args!(
                    "{:?} may now {} store {:?} (epoch {})",
                    self.name,
                    if a == "rw" { "read and write" } else { "read" },
                    self.store,
                    self.epoch
                ),
            ),
            None => line(
                out,
                format_args!(
                    "{:?} has no access to store {:?} any more (epoch {})",
                    self.name, self.store, self.epoch
                ),
            ),
        }
    }
}

async fn set_grant(
    name: String,
    store: String,
    access: Option<Access>,
    config: ConfigArg,
    json: bool,
) -> anyhow::Result<()> {
    let client = connect(config).await?;
    let (doc, missed) = client.set_grant(&name, &store, access).await?;
    for m in &missed {
        eprintln!("quire: warning: {m} (it will learn the grant from clients)");
    }
    client.close();
    print(
        &GrantView {
            ok: true,
            name,
            store,
            access: access.map(Access::short),
            epoch: doc.epoch,
        },
        json,
    )
}

/// `quire grant ...`.
pub async fn grant(args: GrantArgs, config: ConfigArg, json: bool) -> anyhow::Result<()> {
    let access = if args.write {
        Access::Write
    } else {
        Access::Read
    };
    set_grant(args.name, args.store, Some(access), config, json).await
}

/// `quire revoke ...`.
pub async fn revoke(args: RevokeArgs, config: ConfigArg, json: bool) -> anyhow::Result<()> {
    set_grant(args.name, args.store, None, config, json).await
}
