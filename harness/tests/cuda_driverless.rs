//! A machine without the CUDA driver (CI, this project's dev machines):
//! asking for `cuda` records those cases `unavailable` with "no CUDA driver
//! found" while the other backends run — never a loader error or a panic.
//! The CUDA worker is named with CAPBENCH_CUDA_WORKER; the driver is probed
//! before any worker starts, so no CUDA build is needed to test this path:
//! the worker here is a fake that leaves a file behind if it is ever started.

#![cfg(unix)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// A stand-in `capbench-cuda` in `dir`: started, it writes `launched` beside
/// itself and fails. (A real one, linked to libcuda, would not even load
/// here: the dynamic loader stops it before main.)
fn fake_worker(dir: &Path) -> (PathBuf, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let exe = dir.join("capbench-cuda");
    let marker = dir.join("launched");
    std::fs::write(
        &exe,
        format!("#!/bin/sh\necho \"$@\" >> '{}'\nexit 1\n", marker.display()),
    )
    .unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    (exe, marker)
}

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

/// `backend`'s entry of `capbench list backends --json`, with
/// CAPBENCH_CUDA_WORKER set to `worker`.
fn listed(worker: &Path, backend: &str) -> serde_json::Value {
    let out = capbench()
        .env("CAPBENCH_CUDA_WORKER", worker)
        .args(["list", "backends", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .find(|b| b["backend"] == backend)
        .unwrap_or_else(|| panic!("no {backend} in {v}"))
        .clone()
}

/// The fake worker's marker is absent: nothing started it.
fn assert_never_started(launched: &Path) {
    assert!(
        !launched.exists(),
        "the CUDA worker was started without a driver: {:?}",
        std::fs::read_to_string(launched)
    );
}

#[test]
fn cuda_without_a_driver_is_unavailable_and_the_rest_runs() {
    if !no_driver_here() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (worker, launched) = fake_worker(tmp.path());
    let dir = tmp.path().join("run");
    let out = capbench()
        .env("CAPBENCH_CUDA_WORKER", &worker)
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
    let cuda = listed(&worker, "cuda");
    assert_eq!(cuda["compiled_in"], true, "{cuda}");
    assert_eq!(cuda["usable"], false, "{cuda}");
    assert!(
        cuda["note"]
            .as_str()
            .unwrap()
            .contains("no CUDA driver found"),
        "{cuda}"
    );
    assert_never_started(&launched);
}

/// `llamacpp:cuda` links libcuda as candle's cuda does, so it too runs in
/// the CUDA worker, and without a driver that worker is never started:
/// `run` refuses the backend (exit 2) with the driver's answer, and `list
/// backends` adds it to the llamacpp entry. Without a worker, the refusal
/// names the feature to build.
#[test]
fn llamacpp_cuda_without_a_driver_is_refused_and_no_worker_starts() {
    if !no_driver_here() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (worker, launched) = fake_worker(tmp.path());
    let dir = tmp.path().join("run");
    let run = |with_worker: bool| {
        let mut cmd = capbench();
        if with_worker {
            cmd.env("CAPBENCH_CUDA_WORKER", &worker);
        } else {
            cmd.env_remove("CAPBENCH_CUDA_WORKER");
        }
        cmd.args([
            "run",
            "--backend",
            "llamacpp:cuda",
            "--workload",
            "decode/dense-tiny/q8_0/p16g16",
            "--repeat",
            "1",
            "--quiet",
            "--out",
        ])
        .arg(&dir)
        .output()
        .unwrap()
    };
    let out = run(true);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no CUDA driver found"),
        "{}",
        stderr(&out)
    );
    assert!(!dir.exists(), "a run folder was written: {}", stderr(&out));

    let out = run(false);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("llamacpp-cuda"), "{}", stderr(&out));

    let llamacpp = listed(&worker, "llamacpp");
    let note = llamacpp["note"].as_str().unwrap();
    assert!(
        note.contains("llamacpp:cuda: no CUDA driver found"),
        "{llamacpp}"
    );
    assert_never_started(&launched);
}

/// A CUDA worker named as this very binary (or a `capbench-cuda` that
/// lacks a backend and finds itself beside itself) is no worker: the
/// backend is "not compiled in", never a `list backends` that starts itself
/// again without end.
#[test]
fn this_binary_is_never_its_own_cuda_worker() {
    if (capbench_workloads::Backend::Cuda { ordinal: 0 }).compiled_in() {
        return;
    }
    let cuda = listed(Path::new(env!("CARGO_BIN_EXE_capbench")), "cuda");
    assert_eq!(cuda["compiled_in"], false, "{cuda}");
    assert!(
        cuda["note"].as_str().unwrap().contains("--features cuda"),
        "{cuda}"
    );
}

/// scripts/gpu-check.sh with a prebuilt pair on a machine without the
/// driver: it stops before any case with capbench's answer (exit 2), never
/// starts the worker and writes no run folder.
#[test]
fn gpu_check_script_stops_clearly_without_a_driver() {
    if !no_driver_here() {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let script = root.join("scripts/gpu-check.sh");
    let tmp = tempfile::tempdir().unwrap();
    let (_, launched) = fake_worker(tmp.path());
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_capbench"), tmp.path().join("capbench"))
        .unwrap();
    let out_dir = tmp.path().join("run");

    let help = Command::new("bash")
        .arg(&script)
        .arg("--help")
        .output()
        .unwrap();
    assert!(help.status.success(), "{}", stderr(&help));
    assert!(String::from_utf8_lossy(&help.stdout).contains("CAPBENCH_BIN_DIR"));
    let bad = Command::new("bash")
        .arg(&script)
        .arg("--nope")
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    assert!(
        stderr(&bad).contains("unknown option '--nope'"),
        "{}",
        stderr(&bad)
    );

    let out = Command::new("bash")
        .arg(&script)
        .arg(&out_dir)
        .env("CAPBENCH_BIN_DIR", tmp.path())
        .env_remove("CAPBENCH_CUDA_WORKER")
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("gpu-check: cuda is not usable here: no CUDA driver found"),
        "{err}"
    );
    assert!(!launched.exists(), "the CUDA worker was started: {err}");
    assert!(!out_dir.exists(), "a run folder was written: {err}");
}

/// Every helper script at least parses.
#[test]
fn scripts_parse() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    for entry in std::fs::read_dir(root.join("scripts")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "sh") {
            let out = Command::new("bash").arg("-n").arg(&path).output().unwrap();
            assert!(out.status.success(), "{}: {}", path.display(), stderr(&out));
        }
    }
}

/// scripts/build-cuda.sh checks its argument before it installs or builds
/// anything (a bad one costs no toolkit download and no hour of nvcc).
#[test]
fn build_cuda_script_checks_its_argument() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let script = root.join("scripts/build-cuda.sh");
    let run = |args: &[&str]| {
        Command::new("bash")
            .arg(&script)
            .args(args)
            .env_remove("CUDA_COMPUTE_CAP")
            .output()
            .unwrap()
    };
    let help = run(&["--help"]);
    assert!(help.status.success(), "{}", stderr(&help));
    assert!(String::from_utf8_lossy(&help.stdout).contains("COMPUTE_CAP"));
    for (args, says) in [
        (&["8.6"][..], "COMPUTE_CAP must be digits"),
        (&["70"][..], "compute capability 7.5 and newer"),
        (&["80", "90"][..], "one COMPUTE_CAP at most"),
        (&["--nope"][..], "unknown option '--nope'"),
        (&["--llamacpp", "8.6"][..], "COMPUTE_CAP must be digits"),
        (
            &["--llamacpp-only", "80", "90"][..],
            "one COMPUTE_CAP at most",
        ),
        (&["90", "--llamacpp"][..], "one COMPUTE_CAP at most"),
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
    }
}
