//! Helpers shared by the integration tests: run the real binary, read results.

#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

pub fn capbench() -> Command {
    Command::new(env!("CARGO_BIN_EXE_capbench"))
}

pub fn run_ok<S: AsRef<std::ffi::OsStr> + std::fmt::Debug>(args: &[S]) -> Output {
    let out = capbench().args(args).output().expect("spawn capbench");
    assert!(
        out.status.success(),
        "capbench {args:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Whether wgpu has a usable adapter here. Under CAPBENCH_REQUIRE_WGPU=1 (CI)
/// a missing adapter fails the test instead of skipping it.
pub fn wgpu_usable() -> bool {
    let out = run_ok(&["list", "backends", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let wgpu = v
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["backend"] == "wgpu")
        .unwrap()
        .clone();
    let usable = wgpu["usable"].as_bool().unwrap();
    if !usable {
        if std::env::var("CAPBENCH_REQUIRE_WGPU").as_deref() == Ok("1") {
            panic!(
                "CAPBENCH_REQUIRE_WGPU=1 but wgpu is not usable: {}",
                wgpu["note"]
            );
        }
        eprintln!("skipping wgpu test: {}", wgpu["note"]);
    }
    usable
}

pub fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

/// `run` of one small cpu GEMM case with one worker process, into `dir`.
pub fn small_cpu_run(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = [
        "run",
        "--quiet",
        "--backend",
        "cpu",
        "--workload",
        "kernel/gemm-f32-128",
        "--repeat",
        "1",
        "--out",
    ]
    .map(String::from)
    .to_vec();
    v.push(dir.display().to_string());
    v
}

/// `run --quiet --repeat 1` of a suite file into `dir`.
pub fn suite_run(suite: &Path, dir: &Path) -> Vec<String> {
    vec![
        "run".into(),
        "--quiet".into(),
        "--repeat".into(),
        "1".into(),
        "--suite".into(),
        suite.display().to_string(),
        "--out".into(),
        dir.display().to_string(),
    ]
}

/// The first CPU this process may run on (Linux: `Cpus_allowed_list`), so a
/// pinning test does not assume CPU 0 is in the cgroup's set; 0 elsewhere.
pub fn first_allowed_cpu() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
                .and_then(|l| l.trim().split([',', '-']).next()?.parse().ok())
        })
        .unwrap_or(0)
}
