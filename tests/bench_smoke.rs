//! `quire bench` runs end to end on a fresh local cluster with both
//! baselines, in both modes, and prints well-formed figures. (Speed itself
//! is measured by running the benchmark, not asserted here.)

use serde_json::Value;
use std::process::Command;

#[test]
fn bench_runs_workloads_in_both_modes_with_baselines() {
    let dir = tempfile::tempdir().unwrap();
    let chart = dir.path().join("chart.png");
    // The chart needs a TrueType font; .ci/run installs one.
    let font = quire::bench::plot::FONT_CANDIDATES
        .iter()
        .any(|f| std::path::Path::new(f).exists());
    if !font {
        eprintln!("no font installed: the chart is not checked");
    }
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_quire"));
    cmd.args([
        "bench",
        "--local-nodes",
        "3",
        "--records",
        "300",
        "--duration-s",
        "1",
        "--concurrency",
        "4",
        "--workloads",
        "a,f",
        "--store-nrw",
        "1,1,1",
        "--baseline",
        "quic-echo",
        "--threads",
        "3",
        "--json",
    ]);
    if font {
        cmd.arg("--plot").arg(&chart);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "quire bench failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reports: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    let reports = reports.as_array().unwrap();
    let targets: Vec<&str> = reports
        .iter()
        .map(|r| r["target"].as_str().unwrap())
        .collect();
    assert_eq!(
        targets,
        [
            "quire default (3,2,2)",
            "quire bench_nrw (1,1,1)",
            "quic-echo"
        ]
    );
    for r in reports {
        // `--threads 3`: the client's runtime had the three threads asked
        // for (not one per core, as without the option).
        assert_eq!(r["runtime_threads"], 3, "{}", r["target"]);
        let runs = r["runs"].as_array().unwrap();
        let paces: Vec<&str> = runs.iter().map(|x| x["pace"].as_str().unwrap()).collect();
        assert_eq!(paces.len(), 4, "A and F, closed and open: {paces:?}");
        assert!(paces[1].starts_with("open@") && paces[3].starts_with("open@"));
        for run in runs {
            assert!(run["ops_per_sec"].as_f64().unwrap() > 0.0);
            assert_eq!(run["errors"], 0, "{run}");
            for k in run["kinds"].as_array().unwrap() {
                let (p50, p99, p999, max) = (
                    k["p50_us"].as_u64().unwrap(),
                    k["p99_us"].as_u64().unwrap(),
                    k["p999_us"].as_u64().unwrap(),
                    k["max_us"].as_u64().unwrap(),
                );
                assert!(p50 > 0 && p50 <= p99 && p99 <= p999 && p999 <= max, "{k}");
            }
        }
    }
    // Node memory and data files are reported for the local cluster.
    for field in [
        "node_peak_memory_bytes",
        "node_heap_memory_bytes",
        "node_data_file_bytes",
    ] {
        let sizes = reports[0][field].as_array().unwrap();
        assert_eq!(sizes.len(), 3, "{field}");
        assert!(sizes.iter().all(|b| b.as_u64().unwrap() > 0), "{field}");
    }
    if font {
        let png = std::fs::read(&chart).expect("chart written");
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    }
}
