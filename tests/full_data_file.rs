//! A node whose data file reaches its size limit refuses writes with an
//! error that says so and what to do, keeps every write it acknowledged,
//! and goes on serving reads (a real node process, a 24 MiB map filled
//! with 1 MiB values).

mod common;

use common::{builder, TestCluster, QUIRE};
use quire::{ClientError, Context};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_data_file_refuses_writes_clearly_and_keeps_what_it_acknowledged() {
    let cluster =
        TestCluster::from(builder(1).processes(QUIRE).map_size_bytes(24 << 20), false).await;
    let client = cluster.client().await;
    let mut acked = Vec::new();
    let mut refusal = None;
    for i in 0..64 {
        let key = format!("big-{i}").into_bytes();
        match client
            .put("default", &key, vec![i as u8; 1 << 20], &Context::empty())
            .await
        {
            Ok(_) => acked.push((key, i as u8)),
            Err(e) => {
                refusal = Some(e);
                break;
            }
        }
    }
    let refusal = refusal.expect("64 MiB went into a 24 MiB data file");
    let text = refusal.to_string();
    assert!(matches!(refusal, ClientError::Quorum(_)), "{refusal:?}");
    assert!(
        text.contains("data file is full") && text.contains("map_size_bytes"),
        "{text}"
    );
    assert!(acked.len() >= 4, "only {} puts fitted", acked.len());
    // Every acknowledged write is there, and reads are served.
    for (key, fill) in &acked {
        let read = client.get("default", key).await.expect("reads go on");
        assert_eq!(read.values().len(), 1);
        assert!(read.values()[0].iter().all(|b| b == fill));
    }
    // Small writes are refused the same way while the file is full.
    let small = client
        .put("default", b"small", b"x".to_vec(), &Context::empty())
        .await;
    if let Err(e) = small {
        assert!(e.to_string().contains("data file is full"), "{e}");
    }
}
