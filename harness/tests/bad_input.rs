//! Bad input gets a clear message naming file and place, exit code 2, and
//! leaves results already written untouched.

mod common;

use common::*;

fn expect_exit_2(args: &[&str]) -> String {
    let out = capbench().args(args).output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "capbench {args:?}: {err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

#[test]
fn malformed_suite_toml_names_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let suite = tmp.path().join("bad.toml");
    write(
        &suite,
        "name = \"bad\"\nworkloads = [\"kernel/gemm-f32-64\"\n[sampling]\n",
    );
    let err = expect_exit_2(&[
        "run",
        "--suite",
        suite.to_str().unwrap(),
        "--out",
        tmp.path().join("r").to_str().unwrap(),
    ]);
    assert!(
        err.contains(suite.to_str().unwrap()) && err.contains("line "),
        "{err}"
    );
    assert!(err.contains("fix:"), "{err}");

    write(
        &suite,
        "name = \"bad\"\nworkloads = [\n  \"kernel/gemm-f32-64\",\n  \"kernel/gemm-q3-64\",\n]\n",
    );
    let err = expect_exit_2(&["run", "--suite", suite.to_str().unwrap()]);
    assert!(
        err.contains("line 4") && err.contains("kernel/gemm-q3-64"),
        "{err}"
    );
}

#[test]
fn malformed_run_json_names_file_and_place() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    run_ok(&small_cpu_run(&dir));
    let run_json = dir.join("run.json");
    let good = std::fs::read_to_string(&run_json).unwrap();

    // Truncated in the middle.
    write(&run_json, &good[..good.len() / 2]);
    let err = expect_exit_2(&["show", dir.to_str().unwrap()]);
    assert!(
        err.contains("run.json: line ") && err.contains("malformed JSON"),
        "{err}"
    );

    // A future schema.
    write(
        &run_json,
        &good.replacen("\"schema_version\": 1", "\"schema_version\": 7", 1),
    );
    let err = expect_exit_2(&["show", run_json.to_str().unwrap()]);
    assert!(err.contains("schema_version 7 is not supported"), "{err}");

    // Valid JSON, wrong shape: the field is named.
    write(
        &run_json,
        &good.replacen("\"status\": \"ok\"", "\"status\": \"great\"", 1),
    );
    let err = expect_exit_2(&["show", run_json.to_str().unwrap()]);
    assert!(err.contains("status"), "{err}");

    // A corrupt journal line is named by line number on resume.
    let journal = dir.join("cases.jsonl");
    write(&journal, "{not json}\n");
    let err = expect_exit_2(&["run", "--resume", dir.to_str().unwrap()]);
    assert!(err.contains("cases.jsonl: line 1"), "{err}");
}

#[test]
fn an_existing_run_folder_is_never_overwritten() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let args = small_cpu_run(&dir);
    run_ok(&args);
    let before = std::fs::read(dir.join("cases.jsonl")).unwrap();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let err = expect_exit_2(&args);
    assert!(
        err.contains("already holds a run") && err.contains("--resume"),
        "{err}"
    );
    assert_eq!(std::fs::read(dir.join("cases.jsonl")).unwrap(), before);
}

#[test]
fn unknown_names_and_missing_backends_are_usage_errors() {
    let err = expect_exit_2(&["run", "--backend", "tpu"]);
    assert!(err.contains("unknown backend 'tpu'"), "{err}");
    let err = expect_exit_2(&["run", "--suite", "nope"]);
    assert!(
        err.contains("unknown suite 'nope'") && err.contains("quick"),
        "{err}"
    );
    let err = expect_exit_2(&["run", "--backend", "cpu", "--workload", "kernel/gemv*"]);
    assert!(err.contains("nothing to run"), "{err}");
    if !cfg!(feature = "cuda") {
        let err = expect_exit_2(&["run", "--backend", "cuda"]);
        assert!(err.contains("rebuild with --features cuda"), "{err}");
    }
    let err = expect_exit_2(&["run", "--resume", "/nonexistent/capbench-run"]);
    assert!(err.contains("plan.json"), "{err}");
    let err = expect_exit_2(&["show", "/nonexistent/run.json"]);
    assert!(err.contains("/nonexistent/run.json"), "{err}");
}
