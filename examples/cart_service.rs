//! An application service built on the SDK: a small HTTP cart service.
//!
//! It links the SDK like any service would, keeps carts in a
//! [`TypedStore`] whose resolver merges concurrent carts (an
//! observed-remove set, so no acknowledged add is lost to a race), and
//! serves the SDK's metrics on `/metrics` in one registry with its own.
//!
//! ```text
//! GET    /carts/{cart}                 the cart: {"cart":..,"items":[..],"siblings":N}
//! POST   /carts/{cart}/items/{item}    add an item; answers with the cart
//! DELETE /carts/{cart}/items/{item}    remove an item; answers with the cart
//! GET    /metrics                      Prometheus text: quire_client_* and cart_*
//! ```
//!
//! `cargo run --example cart_service -- --config quire-local/client.toml
//! --listen 127.0.0.1:8080 [--store default]` (while `quire up` runs). It
//! prints `listening on http://ADDR` once it serves; `--listen
//! 127.0.0.1:0` picks a free port. Errors from the cluster answer 503 with
//! `{"error":..}`: the add was not acknowledged, and may be retried.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use quire::{Client, ClientConfig, ClientError, TypedRead, TypedStore};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::sync::Arc;

/// A cart as an observed-remove set: adds and removes are records, and
/// concurrent carts merge by union, so an add is only ever undone by a
/// remove that saw it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Cart {
    added: BTreeSet<String>,
    removed: BTreeSet<String>,
}

impl Cart {
    /// The union of concurrent carts: the store's resolver.
    pub fn merge(carts: Vec<Cart>) -> Cart {
        carts.into_iter().fold(Cart::default(), |mut acc, c| {
            acc.added.extend(c.added);
            acc.removed.extend(c.removed);
            acc
        })
    }

    /// What the shopper sees.
    pub fn items(&self) -> Vec<String> {
        self.added.difference(&self.removed).cloned().collect()
    }
}

/// Labels of the service's own request counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    status: u16,
}

/// What every request handler shares.
#[derive(Clone)]
pub struct App {
    carts: TypedStore<Cart>,
    registry: Arc<Registry>,
    requests: Family<RequestLabels, Counter>,
}

impl App {
    /// The service over `client`'s `store`, its metrics and the SDK's in
    /// one registry.
    pub fn new(client: &Client, store: &str) -> Result<Self, ClientError> {
        let mut registry = Registry::default();
        client.register_metrics(&mut registry);
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "cart_requests",
            "HTTP requests served by the cart service, by route and status",
            requests.clone(),
        );
        Ok(Self {
            carts: client.typed_store(store, Cart::merge)?,
            registry: Arc::new(registry),
            requests,
        })
    }

    /// The HTTP routes.
    pub fn router(self) -> Router {
        Router::new()
            .route("/carts/{cart}", get(view))
            .route("/carts/{cart}/items/{item}", post(add).delete(remove))
            .route("/metrics", get(metrics))
            .with_state(self)
    }

    /// Counts the request and turns the SDK's answer into HTTP.
    fn answer(
        &self,
        route: &'static str,
        cart: &str,
        read: Result<TypedRead<Cart>, ClientError>,
    ) -> Response {
        let (status, body) = match read {
            Ok(read) => (
                StatusCode::OK,
                serde_json::json!({
                    "cart": cart,
                    "items": read.value.unwrap_or_default().items(),
                    "siblings": read.siblings,
                }),
            ),
            Err(e) => (
                StatusCode::SERVICE_UNAVAILABLE,
                serde_json::json!({ "error": e.to_string() }),
            ),
        };
        self.requests
            .get_or_create(&RequestLabels {
                route,
                status: status.as_u16(),
            })
            .inc();
        let json = [(header::CONTENT_TYPE, "application/json")];
        (status, json, body.to_string()).into_response()
    }
}

/// `GET /carts/{cart}`.
async fn view(State(app): State<App>, Path(cart): Path<String>) -> Response {
    let read = app.carts.get(cart_key(&cart)).await;
    app.answer("view", &cart, read)
}

/// `POST /carts/{cart}/items/{item}`: read, add, write back with the
/// read's context (retried by the SDK when a quorum is out of reach).
async fn add(State(app): State<App>, Path((cart, item)): Path<(String, String)>) -> Response {
    let written = app
        .carts
        .update(cart_key(&cart), |current| {
            let mut c = current.unwrap_or_default();
            c.added.insert(item.clone());
            c
        })
        .await;
    app.answer("add", &cart, written)
}

/// `DELETE /carts/{cart}/items/{item}`: records the remove, which hides
/// only the adds it saw.
async fn remove(State(app): State<App>, Path((cart, item)): Path<(String, String)>) -> Response {
    let written = app
        .carts
        .update(cart_key(&cart), |current| {
            let mut c = current.unwrap_or_default();
            c.removed.insert(item.clone());
            c
        })
        .await;
    app.answer("remove", &cart, written)
}

/// `GET /metrics`: the SDK's metrics and the service's, one scrape.
async fn metrics(State(app): State<App>) -> Response {
    let mut text = String::new();
    if encode(&mut text, &app.registry).is_err() {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    let kind = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    ([(header::CONTENT_TYPE, kind)], text).into_response()
}

/// The store key of a cart.
fn cart_key(cart: &str) -> String {
    format!("cart/{cart}")
}

/// `--config`, `--listen` and `--store`, from the command line.
struct Args {
    config: std::path::PathBuf,
    listen: String,
    store: String,
}

fn args() -> Result<Args, String> {
    let mut args = Args {
        config: std::env::var_os("QUIRE_CONFIG")
            .map_or_else(|| "quire-local/client.toml".into(), Into::into),
        listen: "127.0.0.1:8080".into(),
        store: "default".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--config" => args.config = value.into(),
            "--listen" => args.listen = value,
            "--store" => args.store = value,
            _ => return Err(format!("unknown argument {flag}")),
        }
    }
    Ok(args)
}

#[allow(dead_code)] // a test may include this file as a module
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = args()?;
    let client = Client::connect(ClientConfig::load(&args.config)?).await?;
    let app = App::new(&client, &args.store)?;
    let listener = tokio::net::TcpListener::bind(&args.listen).await?;
    println!("listening on http://{}", listener.local_addr()?);
    let stop = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    };
    axum::serve(listener, app.router())
        .with_graceful_shutdown(stop)
        .await?;
    // Let replication past W finish before the process goes.
    client.settle(std::time::Duration::from_secs(5)).await;
    client.close();
    Ok(())
}
