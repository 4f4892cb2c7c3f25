//! The model cache across a run's worker processes: each synthetic model
//! built once and loaded by the next process, verified once per case, and
//! the same weights hash recorded by every process.

mod common;

use std::path::Path;

use common::{read_json, run_ok};

/// `run` of one small decode case with two worker processes into `dir`.
fn decode_run(dir: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "run",
        "--quiet",
        "--backend",
        "cpu",
        "--workload",
        "decode/dense-tiny/q4_0/p8g4",
        "--repeat",
        "2",
        "--out",
        dir.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    run_ok(&args);
    read_json(&dir.join("run.json"))
}

#[test]
fn a_run_builds_each_model_once_and_verifies_it_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let run = decode_run(&dir, &[]);
    let case = &run["cases"][0];
    assert_eq!(case["status"], "ok", "{}", case["status_detail"]);
    let ps = case["processes"].as_array().unwrap();
    assert_eq!(ps.len(), 2);
    let (p0, p1) = (&ps[0]["worker"], &ps[1]["worker"]);
    assert_eq!(p0["weights"]["cache"], "built", "{}", p0["weights"]);
    assert_eq!(p1["weights"]["cache"], "hit", "{}", p1["weights"]);
    assert_eq!(p0["verification"]["passed"], true);
    assert!(p1["verification"].is_null(), "{}", p1["verification"]);
    assert_eq!(p1["verified_by_process"], 0);
    let sha = p0["weights"]["sha256"].as_str().unwrap();
    assert_eq!(sha.len(), 64);
    assert_eq!(p1["weights"]["sha256"], sha);
    assert_eq!(case["tags"]["weights_sha256"], sha);
    // The case's verification is process 0's.
    assert_eq!(case["verification"]["passed"], true);
    // The run's own cache went with its scratch folder.
    assert!(!dir.join(".work").exists());
}

#[test]
fn a_named_cache_outlives_the_run_and_serves_the_next() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("models");
    let cache_arg = cache.to_str().unwrap();
    let first = decode_run(&tmp.path().join("a"), &["--model-cache", cache_arg]);
    let mut names: Vec<String> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names[0].ends_with(".gguf") && names[1].ends_with(".sha256"));
    let second = decode_run(&tmp.path().join("b"), &["--model-cache", cache_arg]);
    let p0 = &second["cases"][0]["processes"][0]["worker"];
    assert_eq!(p0["weights"]["cache"], "hit", "{}", p0["weights"]);
    // Loaded from the cache, the case is still verified once.
    assert_eq!(p0["verification"]["passed"], true);
    assert_eq!(
        p0["weights"]["sha256"],
        first["cases"][0]["tags"]["weights_sha256"]
    );
}
