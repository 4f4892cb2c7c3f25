//! End-to-end: the real binary runs suites into temp folders; results are
//! checked in the files it writes.

mod common;

use common::*;

#[test]
fn list_backends_reports_what_is_compiled_and_usable() {
    let out = run_ok(&["list", "backends", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let by = |name: &str| {
        v.as_array()
            .unwrap()
            .iter()
            .find(|b| b["backend"] == name)
            .unwrap_or_else(|| panic!("{name} missing"))
            .clone()
    };
    assert_eq!(by("cpu")["usable"], true);
    for gpu in ["cuda", "metal"] {
        let b = by(gpu);
        if b["compiled_in"] == false {
            assert_eq!(
                b["note"],
                format!("capbench was built without {gpu} support; rebuild with --features {gpu}")
            );
        }
    }
    if wgpu_usable() {
        let w = by("wgpu");
        let devices = w["devices"].as_array().unwrap();
        assert!(!devices.is_empty());
        for d in devices {
            for key in ["name", "api", "device_type", "driver"] {
                assert!(d[key].is_string(), "{key} in {d}");
            }
        }
    }
    // The table form names every backend.
    let table = String::from_utf8(run_ok(&["list", "backends"]).stdout).unwrap();
    for name in ["cpu", "cuda", "metal", "wgpu"] {
        assert!(table.contains(name), "{table}");
    }
}

#[test]
fn list_commands_work() {
    for what in ["workloads", "profiles", "suites"] {
        run_ok(&["list", what]);
    }
    let w = String::from_utf8(run_ok(&["list", "workloads", "--all"]).stdout).unwrap();
    assert!(w.contains("kernel/gemm") && w.contains("fault/"), "{w}");
}

fn check_gemm_run(dir: &std::path::Path, backend: &str, expected_cases: usize) {
    let run = read_json(&dir.join("run.json"));
    assert_eq!(run["schema_version"], 1);
    let cases = run["cases"].as_array().unwrap();
    assert_eq!(cases.len(), expected_cases);
    for c in cases {
        assert_eq!(c["status"], "ok", "{}", c["status_detail"]);
        assert_eq!(c["backend"], backend);
        assert_eq!(c["verification"]["passed"], true);
        let m = &c["metrics"];
        let (lo, mid, hi) = (
            m["gflops_per_s_ci95_low"].as_f64().unwrap(),
            m["gflops_per_s"].as_f64().unwrap(),
            m["gflops_per_s_ci95_high"].as_f64().unwrap(),
        );
        assert!(mid > 0.0 && lo <= mid && mid <= hi, "{lo} {mid} {hi}");
        assert_eq!(c["stats"]["ci_basis"], "between_process");
        let procs = c["processes"].as_array().unwrap();
        assert_eq!(procs.len(), 2);
        for p in procs {
            let samples = p["worker"]["samples_wall_s"].as_array().unwrap();
            assert!(samples.len() >= 10, "min_samples honoured");
        }
    }
    let env = &run["env"];
    for key in [
        "cpu_model",
        "os_name",
        "rustc_version",
        "git_commit",
        "build_profile",
        "machine_id",
    ] {
        assert!(env[key].is_string(), "env.{key}");
    }
    assert!(env["load_avg_after"].is_array());
    // The journal holds the same cases, one per line.
    let lines = std::fs::read_to_string(dir.join("cases.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), expected_cases);
    // `show` reads it back.
    let shown = String::from_utf8(run_ok(&["show", dir.to_str().unwrap()]).stdout).unwrap();
    assert!(shown.contains("GFLOP/s"), "{shown}");
}

#[test]
fn quick_gemm_on_cpu_records_ok_cases_with_confidence_intervals() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let out = run_ok(&[
        "run",
        "--suite",
        "quick",
        "--backend",
        "cpu",
        "--workload",
        "kernel/gemm-f32-128,kernel/gemm-bf16-*",
        "--repeat",
        "2",
        "--threads",
        "1",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(stderr(&out).contains(dir.to_str().unwrap()), "prints where");
    check_gemm_run(&dir, "cpu", 2);
    let run = read_json(&dir.join("run.json"));
    let c = &run["cases"][0];
    assert_eq!(c["id"], "kernel/gemm-f32-128@cpu+threads=1");
    assert_eq!(c["processes"][0]["worker"]["threads_used"], 1);
}

#[test]
fn quick_gemm_on_wgpu_records_ok_cases() {
    if !wgpu_usable() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    run_ok(&[
        "run",
        "--backend",
        "wgpu",
        "--workload",
        "kernel/gemm-f32-128",
        "--repeat",
        "2",
        "--out",
        dir.to_str().unwrap(),
    ]);
    check_gemm_run(&dir, "wgpu", 1);
    let run = read_json(&dir.join("run.json"));
    let dev = &run["cases"][0]["device"];
    assert_eq!(dev["backend"], "wgpu");
    assert_ne!(dev["api"], "gl", "wgpu must not fall back to GL by itself");
    // GPU timestamps exactly when the device was opened with them.
    let worker = &run["cases"][0]["processes"][0]["worker"];
    let timestamps = worker["device"]["details"]
        .as_array()
        .expect("worker device details")
        .iter()
        .filter_map(|d| d.as_str())
        .any(|d| d.starts_with("features_used=") && d.contains("TIMESTAMP_QUERY"));
    assert_eq!(
        worker["timer"],
        if timestamps {
            "gpu_timestamp_query"
        } else {
            "wall_clock_after_poll_wait"
        }
    );
}

#[test]
fn json_flag_prints_the_run_file() {
    let tmp = tempfile::tempdir().unwrap();
    let mut args = small_cpu_run(&tmp.path().join("run"));
    // --json instead of --quiet: run.json on stdout.
    args[1] = "--json".into();
    let out = run_ok(&args);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["cases"][0]["stats"]["ci_basis"], "within_process");
    let quiet = run_ok(&small_cpu_run(&tmp.path().join("q")));
    assert!(quiet.stdout.is_empty());
}

/// Issue 6: every ok case carries a labelled, non-zero energy figure, and the
/// sources that were skipped say why. On a machine without powercap or a GPU
/// (like CI) that figure is `modelled`, with its inputs.
#[test]
fn every_ok_case_has_a_labelled_non_zero_energy_figure() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let backends = if wgpu_usable() { "cpu,wgpu" } else { "cpu" };
    run_ok(&[
        "run",
        "--quiet",
        "--backend",
        backends,
        "--workload",
        "kernel/gemm-f32-128",
        "--repeat",
        "2",
        "--out",
        dir.to_str().unwrap(),
    ]);
    let run = read_json(&dir.join("run.json"));
    let cases = run["cases"].as_array().unwrap();
    assert!(!cases.is_empty());
    for c in cases {
        assert_eq!(c["status"], "ok", "{}", c["status_detail"]);
        let f = &c["energy"]["figure"];
        let source = f["source"].as_str().unwrap_or_else(|| panic!("{c}"));
        assert!(
            ["measured", "polled", "modelled"].contains(&source),
            "{source}"
        );
        let per_iter = f["energy_j_per_iter"].as_f64().unwrap();
        assert!(per_iter > 0.0, "{f}");
        assert_eq!(c["metrics"]["energy_j_per_iter"].as_f64(), Some(per_iter));
        assert!(c["metrics"]["gflops_per_j"].as_f64().unwrap() > 0.0);
        assert!(c["metrics"]["avg_power_w"].as_f64().unwrap() > 0.0);
        assert_eq!(f["processes"], 2);
        let tried = c["energy"]["sources_tried"].as_array().unwrap();
        let rapl = tried.iter().find(|s| s["name"] == "rapl").unwrap();
        if rapl["status"] != "used" {
            assert!(
                rapl["status"]
                    .as_str()
                    .unwrap()
                    .starts_with("unavailable: ")
            );
        }
        match source {
            "modelled" => {
                let inputs = &f["model_inputs"];
                assert!(
                    inputs["cpu_user_s"].as_f64().unwrap() + inputs["cpu_sys_s"].as_f64().unwrap()
                        > 0.0
                );
                assert!(inputs["assumption"]["tdp_source"].is_string());
            }
            _ => assert!(f["idle_baseline_power_w"].is_number(), "{f}"),
        }
        assert_eq!(c["energy"]["analytic"]["source"], "analytic");
        for p in c["processes"].as_array().unwrap() {
            let m = &p["worker"]["energy"]["measurement"];
            assert!(m["energy_j"].as_f64().unwrap() > 0.0, "{m}");
        }
    }
    let env_sources = run["env"]["energy_sources"].as_array().unwrap();
    assert!(env_sources.iter().any(|s| s["name"] == "cpu_time_model"));
}

#[test]
fn list_energy_names_every_source() {
    let out = run_ok(&["list", "energy", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<_> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "rapl",
            "nvml",
            "ioreport",
            "gpu_tdp_model",
            "cpu_time_model",
            "analytic"
        ]
    );
    for s in v.as_array().unwrap() {
        let status = s["status"].as_str().unwrap();
        assert!(
            status.starts_with("available") || status.starts_with("unavailable: "),
            "{status}"
        );
    }
    let table = String::from_utf8(run_ok(&["list", "backends"]).stdout).unwrap();
    assert!(table.contains("cpu_time_model"), "{table}");
}
