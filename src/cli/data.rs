//! The data path from the command line: `put`, `get`, `delete`, `locate`.
//!
//! Every call is a fresh client: it pulls membership from a seed and has no
//! failure history, so these commands see the cluster as a cold SDK would.

use super::output::{line, Report};
use super::{connect, ConfigArg};
use anyhow::Context as _;
use quire::Context;
use serde::Serialize;

/// `quire put`.
#[derive(clap::Args, Debug)]
pub struct PutArgs {
    /// Store name.
    store: String,
    /// Key (UTF-8 text).
    key: String,
    /// Value (UTF-8 text).
    value: String,
    /// The context token from a `get` of this key: the write replaces the
    /// values that get returned.
    #[arg(long, value_name = "TOKEN")]
    context: Option<String>,
}

/// `quire get` and `quire locate`: which key.
#[derive(clap::Args, Debug)]
pub struct KeyArgs {
    /// Store name.
    store: String,
    /// Key (UTF-8 text).
    key: String,
}

/// `quire delete`.
#[derive(clap::Args, Debug)]
pub struct DeleteArgs {
    /// Store name.
    store: String,
    /// Key (UTF-8 text).
    key: String,
    /// The context token from a `get` of this key: delete what that get
    /// returned. Without it, the key is read first and what the read
    /// returned is deleted (the context used is printed).
    #[arg(long, value_name = "TOKEN", conflicts_with = "blind")]
    context: Option<String>,
    /// Write a tombstone with an empty context: it deletes nothing already
    /// there (every current value stays, as a sibling of the tombstone).
    #[arg(long)]
    blind: bool,
}

/// How long a command waits, after its answer, for the replication and
/// read repair its request still has under way: the process exits next,
/// and its runtime with it.
const SETTLE: std::time::Duration = std::time::Duration::from_secs(5);

fn context(token: Option<&str>) -> anyhow::Result<Context> {
    match token {
        None => Ok(Context::empty()),
        Some(t) => {
            Context::from_token(t).context("--context is not a token printed by `quire get`")
        }
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// What a put or delete prints.
#[derive(Serialize)]
struct Written {
    ok: bool,
    context: String,
    #[serde(skip)]
    acknowledged: usize,
}

impl Written {
    fn from(result: &quire::PutResult) -> Self {
        Self {
            ok: true,
            context: result.context.to_token(),
            acknowledged: result.acknowledged,
        }
    }
}

impl Report for Written {
    fn text(&self, out: &mut String) {
        line(
            out,
            format_args!("ok (acknowledged by {} replicas)", self.acknowledged),
        );
        line(out, format_args!("context: {}", self.context));
    }
}

/// `quire put`.
pub async fn put(args: PutArgs, config: ConfigArg, json: bool) -> anyhow::Result<()> {
    let ctx = context(args.context.as_deref())?;
    let client = connect(config).await?;
    let result = client
        .put(
            &args.store,
            args.key.as_bytes(),
            args.value.into_bytes(),
            &ctx,
        )
        .await?;
    client.settle(SETTLE).await;
    super::output::print(&Written::from(&result), json)
}

/// `quire delete`.
pub async fn delete(args: DeleteArgs, config: ConfigArg, json: bool) -> anyhow::Result<()> {
    let client = connect(config).await?;
    let ctx = match (&args.context, args.blind) {
        (Some(token), _) => context(Some(token))?,
        (None, true) => Context::empty(),
        // What a user means by "delete this key": what is there now. A
        // context-less tombstone would leave every current value standing.
        (None, false) => {
            let read = client.get(&args.store, args.key.as_bytes()).await?;
            if !json {
                eprintln!(
                    "quire: deleting what a read returned ({} value(s)), context {}",
                    read.siblings.len(),
                    read.context.to_token()
                );
            }
            read.context
        }
    };
    let result = client
        .delete(&args.store, args.key.as_bytes(), &ctx)
        .await?;
    client.settle(SETTLE).await;
    super::output::print(&Written::from(&result), json)
}

/// What a get prints.
#[derive(Serialize)]
struct Read {
    found: bool,
    values: Vec<String>,
    context: String,
}

impl Report for Read {
    fn text(&self, out: &mut String) {
        match self.values.as_slice() {
            [] => line(out, format_args!("not found")),
            [one] => line(out, format_args!("{one}")),
            many => {
                for (i, v) in many.iter().enumerate() {
                    line(out, format_args!("sibling {}: {v}", i + 1));
                }
            }
        }
        line(out, format_args!("context: {}", self.context));
    }
}

/// `quire get`.
pub async fn get(args: KeyArgs, config: ConfigArg, json: bool) -> anyhow::Result<()> {
    let client = connect(config).await?;
    let result = client.get(&args.store, args.key.as_bytes()).await?;
    client.settle(SETTLE).await;
    let read = Read {
        found: result.found(),
        values: result.values().into_iter().map(text).collect(),
        context: result.context.to_token(),
    };
    super::output::print(&read, json)
}

/// One entry of a preference list.
#[derive(Serialize)]
struct Located {
    id: String,
    addr: String,
    #[serde(skip)]
    home: bool,
}

/// What `locate` prints.
#[derive(Serialize)]
struct Location {
    partition: u32,
    preference_list: Vec<Located>,
}

impl Report for Location {
    fn text(&self, out: &mut String) {
        line(out, format_args!("partition {}", self.partition));
        for (i, n) in self.preference_list.iter().enumerate() {
            let role = if n.home { "home" } else { "extended" };
            line(
                out,
                format_args!("{:>2}. {}  {:<21}  {role}", i + 1, n.id, n.addr),
            );
        }
    }
}

/// `quire locate`.
pub async fn locate(args: KeyArgs, config: ConfigArg, json: bool) -> anyhow::Result<()> {
    let client = connect(config).await?;
    let doc = client.membership();
    let list = client.locate(&args.store, args.key.as_bytes())?;
    let location = Location {
        partition: list.partition,
        preference_list: list
            .nodes
            .iter()
            .enumerate()
            .map(|(i, id)| Located {
                id: id.to_string(),
                addr: doc.member(*id).map_or("?", |m| m.addr.as_str()).to_string(),
                home: i < list.n,
            })
            .collect(),
    };
    client.close();
    super::output::print(&location, json)
}
