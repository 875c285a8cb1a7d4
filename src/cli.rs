//! What each `quire` command does and prints.

use crate::{Command, StoreCommand};
use anyhow::{anyhow, bail, Context as _};
use quire::local::{self, UpOptions};
use quire::shared::{ConflictPolicy, Durability, StoreConfig};
use quire::{Client, ClientConfig, Context};
use serde_json::json;
use std::path::{Path, PathBuf};

/// Where client commands look for a config when neither `--config` nor
/// `$QUIRE_CONFIG` names one.
const CLIENT_CONFIG_DEFAULT: &str = "quire-local/client.toml";

fn client_config_path(flag: Option<PathBuf>) -> PathBuf {
    flag.or_else(|| std::env::var_os("QUIRE_CONFIG").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(CLIENT_CONFIG_DEFAULT))
}

async fn connect(flag: Option<PathBuf>) -> anyhow::Result<Client> {
    let path = client_config_path(flag);
    if !path.exists() {
        bail!(
            "no client config at {}: start a local cluster with `quire up`, or pass --config FILE or set QUIRE_CONFIG",
            path.display()
        );
    }
    let config = ClientConfig::load(&path)?;
    Ok(Client::connect(config).await?)
}

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

/// Runs one command.
pub async fn run(command: Command, config: Option<PathBuf>, json: bool) -> anyhow::Result<()> {
    match command {
        Command::Up {
            nodes,
            dir,
            base_port,
        } => up(dir, nodes, base_port, json).await,
        Command::Down { dir } => {
            let stopped = local::down(&dir)?;
            if json {
                println!("{}", json!({ "ok": true, "stopped": stopped }));
            } else {
                println!("stopped {stopped} node process(es) of {}", dir.display());
            }
            Ok(())
        }
        Command::Node => {
            let path = config.ok_or_else(|| anyhow!("`quire node` needs --config NODE.toml"))?;
            let node_config = quire_node::config::NodeConfig::load(&path)?;
            quire_node::run(node_config, quire_node::shutdown_signal()).await?;
            Ok(())
        }
        Command::Put {
            store,
            key,
            value,
            context: token,
        } => {
            let ctx = context(token.as_deref())?;
            let client = connect(config).await?;
            let result = client
                .put(&store, key.as_bytes(), value.into_bytes(), &ctx)
                .await?;
            print_write(&result, json);
            Ok(())
        }
        Command::Delete {
            store,
            key,
            context: token,
        } => {
            let ctx = context(token.as_deref())?;
            let client = connect(config).await?;
            let result = client.delete(&store, key.as_bytes(), &ctx).await?;
            print_write(&result, json);
            Ok(())
        }
        Command::Get { store, key } => {
            let client = connect(config).await?;
            let result = client.get(&store, key.as_bytes()).await?;
            let values: Vec<String> = result.values().into_iter().map(text).collect();
            let token = result.context.to_token();
            if json {
                println!(
                    "{}",
                    json!({ "found": result.found(), "values": values, "context": token })
                );
            } else {
                match values.as_slice() {
                    [] => println!("not found"),
                    [one] => println!("{one}"),
                    many => {
                        for (i, v) in many.iter().enumerate() {
                            println!("sibling {}: {v}", i + 1);
                        }
                    }
                }
                println!("context: {token}");
            }
            Ok(())
        }
        Command::Status => {
            let client = connect(config).await?;
            let doc = client.membership();
            let nodes = client.status().await;
            if json {
                let nodes: Vec<_> = nodes
                    .iter()
                    .map(|n| json!({ "id": format!("{:016x}", n.id), "addr": n.addr, "up": n.up }))
                    .collect();
                let stores: Vec<_> = doc
                    .stores
                    .iter()
                    .map(|s| {
                        json!({ "name": s.name, "n": s.n, "r": s.r, "w": s.w,
                                "policy": s.policy.name(), "durability": s.durability.name() })
                    })
                    .collect();
                println!(
                    "{}",
                    json!({ "epoch": doc.epoch, "nodes": nodes, "stores": stores })
                );
            } else {
                println!(
                    "cluster {:016x}, epoch {}, {} partitions",
                    doc.cluster_id, doc.epoch, doc.partitions
                );
                for n in &nodes {
                    let state = if n.up { "up" } else { "DOWN" };
                    println!("node {:016x}  {:<21}  {state}", n.id, n.addr);
                }
                for s in &doc.stores {
                    println!(
                        "store {}  n={} r={} w={}  policy {}  durability {}",
                        s.name,
                        s.n,
                        s.r,
                        s.w,
                        s.policy.name(),
                        s.durability.name()
                    );
                }
            }
            client.close();
            Ok(())
        }
        Command::Store(StoreCommand::Create {
            name,
            n,
            r,
            w,
            policy,
            durability,
        }) => {
            let client = connect(config).await?;
            let store = StoreConfig {
                name,
                n,
                r,
                w,
                policy: if policy == "lww" {
                    ConflictPolicy::Lww
                } else {
                    ConflictPolicy::Siblings
                },
                durability: if durability == "buffered" {
                    Durability::Buffered
                } else {
                    Durability::Sync
                },
            };
            let (doc, missed) =
                quire::admin::create_store(client.transport(), &client.membership(), store.clone())
                    .await?;
            for m in &missed {
                eprintln!("quire: warning: {m} (it will learn the store from clients)");
            }
            if json {
                println!("{}", json!({ "ok": true, "epoch": doc.epoch }));
            } else {
                println!(
                    "created store {} (n={}, r={}, w={}, policy {}, durability {}) at epoch {}",
                    store.name,
                    store.n,
                    store.r,
                    store.w,
                    store.policy.name(),
                    store.durability.name(),
                    doc.epoch
                );
            }
            client.close();
            Ok(())
        }
        Command::Maintain { once, interval_ms } => {
            let client = connect(config).await?;
            let print = |r: &quire_client::MaintenanceReport| {
                if json {
                    println!(
                        "{}",
                        json!({ "hints_delivered": r.hints_delivered,
                                "hints_dropped": r.hints_dropped,
                                "hints_pending": r.hints_pending,
                                "unreachable": r.unreachable })
                    );
                } else {
                    println!(
                        "hints delivered {}, dropped {}, pending {}{}",
                        r.hints_delivered,
                        r.hints_dropped,
                        r.hints_pending,
                        if r.unreachable.is_empty() {
                            String::new()
                        } else {
                            format!("; unreachable: {}", r.unreachable.join("; "))
                        }
                    );
                }
            };
            if once {
                print(&client.maintain_once().await);
            } else {
                let shutdown = quire_node::shutdown_signal();
                tokio::pin!(shutdown);
                loop {
                    let report = client.maintain_once().await;
                    if report.hints_delivered > 0 || report.hints_pending > 0 {
                        print(&report);
                    }
                    tokio::select! {
                        _ = &mut shutdown => break,
                        _ = tokio::time::sleep(std::time::Duration::from_millis(interval_ms)) => {}
                    }
                }
            }
            client.close();
            Ok(())
        }
        Command::Bench(args) => bench(args, config, json).await,
        Command::Locate { store, key } => {
            let client = connect(config).await?;
            let doc = client.membership();
            let list = client.locate(&store, key.as_bytes())?;
            let addr = |id| doc.member(id).map_or("?", |m| m.addr.as_str()).to_string();
            if json {
                let nodes: Vec<_> = list
                    .nodes
                    .iter()
                    .map(|id| json!({ "id": format!("{id:016x}"), "addr": addr(*id) }))
                    .collect();
                println!(
                    "{}",
                    json!({ "partition": list.partition, "preference_list": nodes })
                );
            } else {
                println!("partition {}", list.partition);
                for (i, id) in list.nodes.iter().enumerate() {
                    let role = if i < list.n { "home" } else { "extended" };
                    println!("{:>2}. {id:016x}  {:<21}  {role}", i + 1, addr(*id));
                }
            }
            Ok(())
        }
    }
}

fn print_write(result: &quire::PutResult, json: bool) {
    let token = result.context.to_token();
    if json {
        println!("{}", json!({ "ok": true, "context": token }));
    } else {
        println!(
            "ok (stored on {} replicas)\ncontext: {token}",
            result.acknowledged
        );
    }
}

async fn up(
    dir: PathBuf,
    nodes: Option<usize>,
    base_port: Option<u16>,
    json: bool,
) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("cannot find the quire executable")?;
    let options = UpOptions {
        dir: dir.clone(),
        nodes,
        base_port,
        exe,
    };
    let ready = |doc: &quire::Membership, layout: &local::layout::Layout| {
        let client_config = layout.client_config();
        if json {
            let nodes: Vec<_> = doc
                .members
                .iter()
                .map(|m| json!({ "id": format!("{:016x}", m.id), "addr": m.addr }))
                .collect();
            println!(
                "{}",
                json!({ "ready": true, "epoch": doc.epoch, "nodes": nodes,
                        "client_config": client_config.display().to_string() })
            );
        } else {
            let addrs: Vec<&str> = doc.members.iter().map(|m| m.addr.as_str()).collect();
            println!(
                "quire: cluster ready: {} nodes ({}), epoch {}",
                doc.members.len(),
                addrs.join(", "),
                doc.epoch
            );
            for s in &doc.stores {
                println!("  store {} (n={}, r={}, w={})", s.name, s.n, s.r, s.w);
            }
            if client_config != Path::new(CLIENT_CONFIG_DEFAULT) {
                println!(
                    "  clients: export QUIRE_CONFIG={}",
                    std::path::absolute(&client_config)
                        .unwrap_or(client_config.clone())
                        .display()
                );
            }
            println!("  try: quire put default hello world && quire get default hello");
            println!("  Ctrl-C stops every node; `quire up` again restarts them with their data.");
        }
    };
    local::up(options, quire_node::shutdown_signal(), ready).await?;
    if !json {
        println!("quire: stopped every node of {}", dir.display());
    }
    Ok(())
}

/// `quire bench`.
async fn bench(args: crate::BenchArgs, config: Option<PathBuf>, json: bool) -> anyhow::Result<()> {
    use quire::bench::keys::KeyChooser;
    use quire::bench::run::{load, run as run_workload, Pace, RunSpec, Target};
    use quire::bench::{print_table, BenchReport, Workload};
    use quire::local::ephemeral::{peak_memory_bytes, EphemeralCluster};

    let workloads: Vec<Workload> = args
        .workloads
        .split(',')
        .map(|w| {
            Workload::parse(w).ok_or_else(|| anyhow!("unknown workload {w:?}: use a, b, c or f"))
        })
        .collect::<anyhow::Result<_>>()?;
    let nrw = match &args.store_nrw {
        None => None,
        Some(text) => {
            let parts: Vec<u8> = text
                .split(',')
                .map(|p| p.trim().parse::<u8>())
                .collect::<Result<_, _>>()
                .context("--store-nrw takes N,R,W, e.g. 1,1,1")?;
            let [n, r, w] = parts[..] else {
                bail!("--store-nrw takes three numbers N,R,W");
            };
            Some(StoreConfig {
                name: "bench_nrw".into(),
                n,
                r,
                w,
                durability: Durability::Sync,
                policy: ConflictPolicy::Siblings,
            })
        }
    };
    if args.concurrency == 0 || args.records == 0 {
        bail!("--concurrency and --records must be positive");
    }
    let keys = if args.distribution == "uniform" {
        KeyChooser::uniform(args.records)
    } else {
        KeyChooser::zipfian(args.records, 0.99)
    };

    // The cluster: fresh and local, or the configured one.
    let mut local = None;
    let client = match args.local_nodes {
        Some(n) => {
            let exe = std::env::current_exe().context("cannot find the quire executable")?;
            let mut stores = vec![quire::admin::default_store(n)];
            stores.extend(nrw.clone());
            let cluster = EphemeralCluster::start(&exe, n, stores).await?;
            let client = Client::connect(cluster.client_config.clone()).await?;
            local = Some(cluster);
            client
        }
        None => {
            let client = connect(config).await?;
            if let Some(store) = &nrw {
                if client.membership().store(&store.name).is_none() {
                    quire::admin::create_store(
                        client.transport(),
                        &client.membership(),
                        store.clone(),
                    )
                    .await?;
                    client.close();
                    connect(None).await?
                } else {
                    client
                }
            } else {
                client
            }
        }
    };

    let mut targets: Vec<(String, Target)> = Vec::new();
    let default = client.membership().store("default").cloned();
    if let Some(s) = default {
        targets.push((
            format!("quire default ({},{},{})", s.n, s.r, s.w),
            Target::Store {
                client: client.clone(),
                store: "default".into(),
            },
        ));
    }
    if let Some(s) = &nrw {
        targets.push((
            format!("quire bench_nrw ({},{},{})", s.n, s.r, s.w),
            Target::Store {
                client: client.clone(),
                store: s.name.clone(),
            },
        ));
    }
    let echo_dir = tempfile::tempdir()?;
    let mut _echo = None;
    if args.baseline.is_some() {
        let server =
            quire::bench::echo::EchoServer::start(echo_dir.path(), args.value_bytes).await?;
        targets.push((
            "quic-echo".into(),
            Target::Echo {
                transport: server.transport.clone(),
                addr: server.addr.to_string(),
            },
        ));
        _echo = Some(server);
    }
    if targets.is_empty() {
        bail!("the cluster has no `default` store to measure");
    }

    let mut reports = Vec::new();
    for (name, target) in &targets {
        let base = RunSpec {
            workload: Workload::C,
            records: args.records,
            value_bytes: args.value_bytes,
            concurrency: args.concurrency,
            duration: std::time::Duration::from_secs(args.duration_s),
            pace: Pace::Closed,
            keys: keys.clone(),
        };
        if !json {
            eprintln!("quire bench: {name}: loading {} records", args.records);
        }
        let contexts = quire::bench::run::Contexts::default();
        let load_secs = if args.no_load {
            0.0
        } else {
            load(target, &base, &contexts)
                .await
                .map_err(|e| anyhow!(e))?
                .as_secs_f64()
        };
        let mut runs = Vec::new();
        for &workload in &workloads {
            let mut spec = RunSpec {
                workload,
                ..base.clone()
            };
            let mut closed_rate = None;
            if args.mode != "open" {
                if !json {
                    eprintln!(
                        "quire bench: {name}: workload {} closed loop",
                        workload.name()
                    );
                }
                let r = run_workload(target, &spec, args.seed, &contexts).await;
                closed_rate = Some(r.ops_per_sec);
                runs.push(r);
            }
            if args.mode != "closed" {
                let rate = args
                    .rate
                    .or(closed_rate.map(|r| r / 2.0))
                    .ok_or_else(|| anyhow!("--mode open needs --rate"))?;
                if !json {
                    eprintln!(
                        "quire bench: {name}: workload {} open loop at {rate:.0} ops/s",
                        workload.name()
                    );
                }
                spec.pace = Pace::Open {
                    rate: rate.max(1.0),
                };
                runs.push(run_workload(target, &spec, args.seed, &contexts).await);
            }
        }
        reports.push(BenchReport {
            target: name.clone(),
            records: args.records,
            value_bytes: args.value_bytes,
            concurrency: args.concurrency,
            distribution: args.distribution.clone(),
            load_secs,
            node_peak_memory_bytes: Vec::new(),
            runs,
        });
    }
    if let (Some(cluster), Some(first)) = (&local, reports.first_mut()) {
        first.node_peak_memory_bytes = cluster
            .pids()
            .into_iter()
            .filter_map(peak_memory_bytes)
            .collect();
    }
    if json {
        println!("{}", serde_json::to_string(&reports)?);
    } else {
        for r in &reports {
            print_table(r);
            println!();
        }
    }
    if let Some(path) = &args.plot {
        quire::bench::plot::draw(&reports, path)?;
        if !json {
            println!("latency chart written to {}", path.display());
        }
    }
    client.close();
    drop(local);
    Ok(())
}
