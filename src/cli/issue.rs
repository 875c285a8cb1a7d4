//! `quire cert issue` and `quire cert init`: identities from the cluster
//! CA, and the operator's directory of a cluster on hosts of its own.
//!
//! Certificates are made from the cluster directory's CA (only the
//! operator holding `ca-key.pem` can issue them). A node issued here gets
//! a directory with everything its machine needs (certificate, key, CA,
//! `node.toml`); `docs/deploy.md` copies it to `/etc/quire`.

use super::connect;
use super::output::{line, print, Report};
use quire::cluster::hosts::{HostNode, HOST_DATA_DIR, HOST_LISTEN};
use quire::cluster::issue::Issued;
use quire::cluster::layout::Layout;
use quire::shared::access::{Access, Role};
use serde::Serialize;
use std::net::SocketAddr;
use std::path::PathBuf;

/// A role on the command line.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum RoleArg {
    /// Serves requests; its certificate names its node id.
    Node,
    /// An application: the data path of the stores it is granted.
    Client,
    /// An operator: everything, including membership and grants.
    Admin,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Self {
        match r {
            RoleArg::Node => Role::Node,
            RoleArg::Client => Role::Client,
            RoleArg::Admin => Role::Admin,
        }
    }
}

/// `quire cert issue ROLE NAME`.
#[derive(clap::Args, Debug)]
pub struct IssueArgs {
    /// What the certificate may do.
    #[arg(value_enum)]
    role: RoleArg,
    /// Its name: grants name it (1 to 64 letters, digits, '-', '_', '.').
    name: String,
    /// The cluster directory holding the CA (`ca.pem`, `ca-key.pem`).
    #[arg(long, default_value = "quire-local")]
    dir: PathBuf,
    /// Days the certificate is valid.
    #[arg(long, default_value_t = quire::certs::LEAF_DAYS_DEFAULT)]
    days: u32,
    /// Grant the new client STORE:r (read) or STORE:rw (read and write);
    /// repeatable. Needs the cluster running and DIR/client.toml (admin).
    #[arg(long, value_name = "STORE:r|rw", value_parser = parse_grant)]
    grant: Vec<(String, Access)>,
    /// For a node: the address it listens on (QUIC, UDP), written to its
    /// node.toml.
    #[arg(long, value_name = "HOST:PORT", default_value = HOST_LISTEN)]
    listen: SocketAddr,
    /// For a node: serve Prometheus metrics on this TCP address.
    #[arg(long, value_name = "HOST:PORT")]
    metrics: Option<SocketAddr>,
    /// For a node: its data directory on its host.
    #[arg(long, value_name = "PATH", default_value = HOST_DATA_DIR)]
    data_dir: PathBuf,
}

fn parse_grant(s: &str) -> Result<(String, Access), String> {
    let (store, access) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("{s:?}: expected STORE:r or STORE:rw"))?;
    let access = Access::from_short(access)
        .ok_or_else(|| format!("{s:?}: access must be r or rw, not {access:?}"))?;
    Ok((store.to_string(), access))
}

/// What `cert issue` prints.
#[derive(Serialize)]
struct IssuedView {
    role: &'static str,
    name: String,
    dir: PathBuf,
    config: Option<PathBuf>,
    node_id: Option<String>,
    grants: Vec<String>,
}

impl Report for IssuedView {
    fn text(&self, out: &mut String) {
        line(
            out,
            format_args!(
                "issued {} {:?} in {}",
                self.role,
                self.name,
                self.dir.display()
            ),
        );
        if let Some(id) = &self.node_id {
            line(out, format_args!("node id {id}"));
        }
        if let Some(config) = &self.config {
            line(
                out,
                format_args!("use it with --config {}", config.display()),
            );
        }
        for g in &self.grants {
            line(out, format_args!("granted {g}"));
        }
    }
}

/// `quire cert issue`.
pub async fn issue(args: IssueArgs, json: bool) -> anyhow::Result<()> {
    let role: Role = args.role.into();
    if role != Role::Client && !args.grant.is_empty() {
        anyhow::bail!("--grant is for client identities: admins need none, nodes make no requests");
    }
    let layout = Layout::new(&args.dir);
    let host = HostNode {
        listen: args.listen,
        metrics: args.metrics,
        data_dir: args.data_dir.clone(),
    };
    let Issued {
        principal,
        dir,
        config,
        ..
    } = layout.issue_for(role, &args.name, args.days, &host)?;
    let mut granted = Vec::new();
    if !args.grant.is_empty() {
        let client = connect(Some(layout.client_config())).await?;
        for (store, access) in &args.grant {
            client
                .set_grant(&principal.name, store, Some(*access))
                .await?;
            granted.push(format!("{store}:{}", access.short()));
        }
        client.close();
    }
    print(
        &IssuedView {
            role: role.name(),
            name: args.name,
            dir,
            config,
            node_id: principal.node_id().map(|id| id.to_string()),
            grants: granted,
        },
        json,
    )
}

/// `quire cert init`.
#[derive(clap::Args, Debug)]
pub struct InitArgs {
    /// The operator's directory to create (CA, cluster id, admin identity).
    #[arg(long)]
    dir: PathBuf,
    /// A node address for client.toml's seeds (HOST:PORT); repeatable.
    #[arg(long = "seed", value_name = "HOST:PORT", required = true)]
    seeds: Vec<String>,
}

/// What `cert init` prints.
#[derive(Serialize)]
struct InitView {
    ok: bool,
    cluster_id: String,
    dir: PathBuf,
    config: PathBuf,
}

impl Report for InitView {
    fn text(&self, out: &mut String) {
        line(
            out,
            format_args!(
                "cluster {} in {} (CA, admin identity `operator`)",
                self.cluster_id,
                self.dir.display()
            ),
        );
        line(
            out,
            format_args!(
                "next: quire cert issue node NAME --dir {} --listen HOST:PORT, per host",
                self.dir.display()
            ),
        );
        line(
            out,
            format_args!("admin commands: --config {}", self.config.display()),
        );
    }
}

/// `quire cert init`.
pub fn init(args: InitArgs, json: bool) -> anyhow::Result<()> {
    let layout = Layout::new(&args.dir);
    let file = layout.create_for_hosts(args.seeds)?;
    print(
        &InitView {
            ok: true,
            cluster_id: file.cluster_id,
            dir: args.dir,
            config: layout.client_config(),
        },
        json,
    )
}
