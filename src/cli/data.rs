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
    /// Value (UTF-8 text); `-` reads the value's bytes from stdin.
    #[arg(required_unless_present = "file", conflicts_with = "file")]
    value: Option<String>,
    /// Read the value's bytes from this file (any bytes, not only text).
    #[arg(long, value_name = "PATH")]
    file: Option<std::path::PathBuf>,
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

/// `quire get`.
#[derive(clap::Args, Debug)]
pub struct GetArgs {
    #[command(flatten)]
    key: KeyArgs,
    /// Write the value's bytes to stdout exactly as stored, nothing else
    /// (the context goes to stderr). Refused when the key has siblings:
    /// use --json, whose `values_base64` holds each one's bytes.
    #[arg(long)]
    raw: bool,
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

/// A value as text: itself when it is UTF-8, else a note saying how to
/// get its bytes (a terminal is no place for them).
fn text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => format!(
            "<{} bytes, not UTF-8: use --raw or --json (values_base64)>",
            bytes.len()
        ),
    }
}

/// The bytes `quire put` writes: the argument's, stdin's (`-`) or a
/// file's.
fn value_bytes(args: &PutArgs) -> anyhow::Result<Vec<u8>> {
    use std::io::Read;
    match (&args.value, &args.file) {
        (_, Some(path)) => {
            std::fs::read(path).with_context(|| format!("cannot read --file {}", path.display()))
        }
        (Some(v), None) if v == "-" => {
            let mut bytes = Vec::new();
            std::io::stdin()
                .read_to_end(&mut bytes)
                .context("cannot read the value from stdin")?;
            Ok(bytes)
        }
        (Some(v), None) => Ok(v.clone().into_bytes()),
        (None, None) => anyhow::bail!("give a VALUE, `-` for stdin, or --file PATH"),
    }
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
    let value = value_bytes(&args)?;
    let client = connect(config).await?;
    let result = client
        .put(&args.store, args.key.as_bytes(), value, &ctx)
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
    /// Each sibling as text (a note for one that is not UTF-8).
    values: Vec<String>,
    /// Each sibling's exact bytes, base64 (standard alphabet, padded).
    values_base64: Vec<String>,
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
pub async fn get(args: GetArgs, config: ConfigArg, json: bool) -> anyhow::Result<()> {
    use base64::Engine as _;
    let GetArgs { key: args, raw } = args;
    if raw && json {
        anyhow::bail!("--raw and --json cannot be combined: --raw prints bare bytes");
    }
    let client = connect(config).await?;
    let result = client.get(&args.store, args.key.as_bytes()).await?;
    client.settle(SETTLE).await;
    let values = result.values();
    if raw {
        if values.is_empty() {
            anyhow::bail!("not found: {}/{}", args.store, args.key);
        }
        let [one] = values.as_slice() else {
            anyhow::bail!(
                "{} siblings: --raw prints exactly one value; use --json (values_base64)",
                values.len()
            );
        };
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        out.write_all(one).and_then(|()| out.flush())?;
        eprintln!("context: {}", result.context.to_token());
        return Ok(());
    }
    let read = Read {
        found: result.found(),
        values: values.iter().map(|v| text(v)).collect(),
        values_base64: values
            .iter()
            .map(|v| base64::engine::general_purpose::STANDARD.encode(v))
            .collect(),
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
