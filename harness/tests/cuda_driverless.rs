//! A machine without the CUDA driver (CI, this project's dev machines):
//! asking for `cuda` records those cases `unavailable` with "no CUDA driver
//! found" while the other backends run — never a loader error or a panic.
//! The CUDA worker is named with CAPBENCH_CUDA_WORKER; the driver is probed
//! before any worker starts, so no CUDA build is needed to test this path.

mod common;

use common::*;

fn no_driver_here() -> bool {
    match capbench::gpu::cuda_driver::probe() {
        Ok(d) => {
            eprintln!(
                "skipping: this machine has CUDA driver {} with {} GPU(s)",
                d.version_string(),
                d.devices
            );
            false
        }
        Err(e) => {
            eprintln!("no driver here, as this test needs: {e}");
            true
        }
    }
}

#[test]
fn cuda_without_a_driver_is_unavailable_and_the_rest_runs() {
    if !no_driver_here() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let out = capbench()
        .env("CAPBENCH_CUDA_WORKER", env!("CARGO_BIN_EXE_capbench"))
        .args([
            "run",
            "--backend",
            "cpu,cuda",
            "--workload",
            "kernel/gemm-f32-128",
            "--repeat",
            "1",
            "--quiet",
            "--out",
        ])
        .arg(&dir)
        .output()
        .unwrap();
    // Not every case is ok, so 1; a usage error (2) or a crash would differ.
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let run = read_json(&dir.join("run.json"));
    let cases = run["cases"].as_array().unwrap();
    let by = |b: &str| {
        cases
            .iter()
            .find(|c| c["backend"] == b)
            .unwrap_or_else(|| panic!("no {b} case in {cases:?}"))
    };
    assert_eq!(by("cpu")["status"], "ok");
    let cuda = by("cuda");
    assert_eq!(cuda["status"], "unavailable", "{cuda}");
    let detail = cuda["status_detail"].as_str().unwrap();
    assert!(detail.contains("no CUDA driver found"), "{detail}");
    // Nothing was started for it.
    assert!(cuda["processes"][0]["worker"].is_null(), "{cuda}");
    assert_eq!(run["totals"]["by_status"]["unavailable"], 1);

    // `list backends` says the same, and never starts the worker.
    let out = capbench()
        .env("CAPBENCH_CUDA_WORKER", env!("CARGO_BIN_EXE_capbench"))
        .args(["list", "backends", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let cuda = v
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["backend"] == "cuda")
        .unwrap();
    assert_eq!(cuda["compiled_in"], true, "{cuda}");
    assert_eq!(cuda["usable"], false, "{cuda}");
    assert!(
        cuda["note"]
            .as_str()
            .unwrap()
            .contains("no CUDA driver found"),
        "{cuda}"
    );
}
