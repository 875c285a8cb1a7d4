//! The SDK in a few lines, against a running cluster (`quire up` in another
//! terminal): write, read, overwrite with the read's context, delete.
//!
//! `cargo run --example quickstart` (the config comes from `$QUIRE_CONFIG`,
//! else `./quire-local/client.toml`).

use quire::{Client, ClientConfig, Context};
use std::path::PathBuf;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::var_os("QUIRE_CONFIG")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("quire-local/client.toml"));
    let client = Client::connect(ClientConfig::load(&path)?).await?;

    // A blind write: it replaces nothing, so it may add a sibling.
    client
        .put("default", b"cart", b"apple".to_vec(), &Context::empty())
        .await?;
    let read = client.get("default", b"cart").await?;
    println!("siblings after the first write: {}", read.siblings.len());

    // Merge what we read and write it back with the read's context: the
    // merge replaces every value the read returned.
    let mut merged: Vec<u8> = read.values().join(&b","[..]);
    merged.extend_from_slice(b",pear");
    client
        .put("default", b"cart", merged, &read.context)
        .await?;
    let read = client.get("default", b"cart").await?;
    for value in read.values() {
        println!("cart: {}", String::from_utf8_lossy(value));
    }

    client.delete("default", b"cart", &read.context).await?;
    println!(
        "found after delete: {}",
        client.get("default", b"cart").await?.found()
    );
    // Replication past W and read repair go on after each answer: a
    // short-lived program lets them finish before it closes.
    client.settle(std::time::Duration::from_secs(5)).await;
    client.close();
    Ok(())
}
