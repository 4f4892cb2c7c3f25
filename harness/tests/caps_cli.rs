//! Caps through the real binary: the memory cap ends a case as `oom` with
//! its numbers and the run goes on, sweeps plan one case per cap, threads
//! and CPU affinity are recorded as requested and observed, wgpu tiers and
//! device caps refuse cleanly, profiles apply and malformed ones exit 2.

mod common;

use common::*;

fn run_cases(args: &[&str], dir: &std::path::Path) -> (bool, Vec<serde_json::Value>) {
    let mut v: Vec<String> = vec![
        "run".into(),
        "--quiet".into(),
        "--repeat".into(),
        "1".into(),
    ];
    v.extend(args.iter().map(|s| s.to_string()));
    v.push("--out".into());
    v.push(dir.display().to_string());
    let out = capbench().args(&v).output().unwrap();
    let err = stderr(&out);
    assert!(!err.contains("panicked at"), "{err}");
    assert!(
        matches!(out.status.code(), Some(0) | Some(1)),
        "capbench {v:?}: {err}"
    );
    let run = read_json(&dir.join("run.json"));
    (
        out.status.success(),
        run["cases"].as_array().unwrap().clone(),
    )
}

#[test]
fn memory_cap_sweep_records_oom_with_numbers_and_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    // gemm-f32-512: four 1 MiB matrices and a 2 MiB f64 reference.
    let (ok, cases) = run_cases(
        &[
            "--backend",
            "cpu",
            "--workload",
            "kernel/gemm-f32-512",
            "--mem-cap",
            "2MiB,64MiB",
        ],
        &tmp.path().join("r"),
    );
    assert!(!ok, "a case ran out of memory: exit 1");
    assert_eq!(cases.len(), 2);
    let small = &cases[0];
    assert_eq!(small["id"], "kernel/gemm-f32-512@cpu+mem=2MiB");
    assert_eq!(small["status"], "oom", "{}", small["status_detail"]);
    let p = &small["processes"][0];
    let (req, in_use, cap) = (
        p["oom_requested_bytes"].as_u64().unwrap(),
        p["oom_in_use_bytes"].as_u64().unwrap(),
        p["oom_cap_bytes"].as_u64().unwrap(),
    );
    assert_eq!(cap, 2 << 20);
    assert!(in_use <= cap && in_use + req > cap, "{p}");
    assert!(
        small["status_detail"]
            .as_str()
            .unwrap()
            .contains("memory cap")
    );
    assert_eq!(small["caps"]["mem_cap_bytes"], 2u64 << 20);
    assert_eq!(small["tags"]["fit_predicted"], "does_not_fit");
    assert_eq!(small["tags"]["fit_measured"], "does_not_fit");

    let big = &cases[1];
    assert_eq!(big["status"], "ok", "{}", big["status_detail"]);
    let m = &big["metrics"];
    let peak = m["peak_alloc_bytes"].as_f64().unwrap();
    assert!(
        peak > 4.0 * (1 << 20) as f64 && peak <= (64 << 20) as f64,
        "{m}"
    );
    assert!(m["peak_rss_bytes"].as_f64().unwrap() > peak, "{m}");
    assert_eq!(big["tags"]["fit_predicted"], "fits");
    assert_eq!(big["tags"]["fit_measured"], "fits");
    let mem = &big["processes"][0]["worker"]["memory"];
    assert!(
        mem["alloc_peak_verify_bytes"].as_u64().unwrap() > 0,
        "{mem}"
    );
    assert_eq!(
        big["processes"][0]["worker"]["caps_applied"]["rss_watch"],
        cfg!(target_os = "linux")
    );
}

/// Every CPU workload of the quick suite (kernels, and each family's tiny
/// train-step, prefill, decode and quality run) plus the dense-small shapes
/// where weights and optimizer state dominate: the predicted need lands
/// within 10% of the counting allocator's peak. Two warm-up and five timed iterations, as the quick suite runs
/// them: the GEMM pool's threads each take work (and their packing slab)
/// only once a few products have run.
#[test]
fn predicted_need_lands_within_10_percent_of_the_measured_peak() {
    let tmp = tempfile::tempdir().unwrap();
    let suite = tmp.path().join("mem.toml");
    let quick = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("suites/quick.toml"),
    )
    .unwrap();
    let quick: toml::Value = toml::from_str(&quick).unwrap();
    let mut names: Vec<String> = quick["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| format!("\"{}\"", w.as_str().unwrap()))
        .collect();
    for w in [
        "decode/dense-small/f32",
        "decode/dense-small/q8_0",
        "decode/dense-small/q4_0",
        "prefill/dense-small/f32",
        "train-step/dense-small/f32/b1t32",
        // bf16 on the executor: the bf16 products' operand scratch too.
        "train-step/dense-small/bf16/b1t32",
        // Half-precision decode: candle's CPU products widen to f32.
        "decode/dense-tiny/f16",
        "decode/dense-tiny/bf16",
    ] {
        names.push(format!("\"{w}\""));
    }
    write(
        &suite,
        &format!(
            "name = \"mem\"\nworkloads = [{}]\n[sampling]\nwarmup_iters = 2\nmin_samples = 5\nmax_samples = 5\nmax_time_s = 0.2\ntarget_ci_rel = 0.9\n",
            names.join(", ")
        ),
    );
    let (ok, cases) = run_cases(
        &[
            "--backend",
            "cpu",
            "--suite",
            suite.to_str().unwrap(),
            "--mem-cap",
            "4GiB",
        ],
        &tmp.path().join("r"),
    );
    assert!(ok);
    assert_eq!(cases.len(), names.len());
    for c in &cases {
        let m = &c["metrics"];
        let id = c["id"].as_str().unwrap();
        let err = m["predicted_need_error_rel"]
            .as_f64()
            .unwrap_or_else(|| panic!("{id}: no prediction: {m}"));
        let bound = 0.10;
        // Which pool threads take a GEMM chunk (and allocate their packing
        // slab) depends on scheduling under load: the prediction counts
        // every pool thread; a peak lower by whole slabs of idle threads is
        // the same prediction.
        let (need, peak) = (
            m["predicted_need_bytes"].as_f64().unwrap(),
            m["peak_alloc_workload_bytes"].as_f64().unwrap(),
        );
        let slab = capbench_workloads::cost::memory::gemm_slab_bytes();
        let pool = capbench_workloads::cost::memory::gemm_pool_threads() as usize;
        let within =
            (0..pool).any(|idle| ((need - idle as f64 * slab) / peak - 1.0).abs() <= bound);
        assert!(
            err.abs() <= bound || within,
            "{id}: predicted {} vs measured {} bytes ({:+.1}%)",
            m["predicted_need_bytes"],
            m["peak_alloc_workload_bytes"],
            err * 100.0
        );
        assert_eq!(c["tags"]["fit_predicted"], "fits");
    }
}

#[test]
fn threads_and_affinity_are_recorded_as_requested_and_observed() {
    let tmp = tempfile::tempdir().unwrap();
    let cpu = first_allowed_cpu().to_string();
    let (ok, cases) = run_cases(
        &[
            "--backend",
            "cpu",
            // 512: ~20 ms an iteration on one thread, so the timed loop
            // spans many of the kernel's 10 ms CPU-time ticks.
            "--workload",
            "kernel/gemm-f32-512",
            "--threads",
            "1",
            "--cpus",
            &cpu,
        ],
        &tmp.path().join("r"),
    );
    assert!(ok);
    let c = &cases[0];
    assert_eq!(
        c["id"].as_str().unwrap(),
        format!("kernel/gemm-f32-512@cpu+threads=1+cpus={cpu}")
    );
    let a = &c["processes"][0]["worker"]["caps_applied"];
    assert_eq!(a["threads_requested"], 1);
    assert_eq!(a["threads_pool"], 1);
    if cfg!(target_os = "linux") {
        assert_eq!(a["cpus_observed"], cpu.as_str(), "{a}");
        assert!(a["not_applied"].is_null(), "{a}");
    }
    // One pool thread on one CPU: exactly one thread does the work (CPU
    // time ÷ wall time is also recorded, but other processes lower it).
    if cfg!(target_os = "linux") {
        assert_eq!(a["threads_busy"], 1, "{a}");
    }
    assert!(a["cpu_parallelism"].as_f64().unwrap() <= 1.2, "{a}");
    assert_eq!(c["metrics"]["threads_requested"], 1.0);
}

#[test]
fn profiles_apply_their_caps_and_report_fit() {
    let tmp = tempfile::tempdir().unwrap();
    let (ok, cases) = run_cases(
        &[
            "--backend",
            "cpu",
            "--workload",
            "kernel/gemm-f32-128",
            "--profile",
            "m2-air-8gb,raspberry-pi-5-8gb",
        ],
        &tmp.path().join("r"),
    );
    assert!(ok);
    assert_eq!(cases.len(), 2);
    let air = &cases[0];
    assert_eq!(air["id"], "kernel/gemm-f32-128@cpu+profile=m2-air-8gb");
    let cap = air["caps"]["mem_cap_bytes"].as_u64().unwrap();
    assert!(cap < 8 << 30 && cap > 5 << 30, "OS share reserved: {cap}");
    assert_eq!(air["tags"]["profile"], "m2-air-8gb");
    assert_eq!(air["tags"]["fit_predicted"], "fits");
    assert!(
        air["tags"]["not_emulated"]
            .as_str()
            .unwrap()
            .contains("bandwidth")
    );
    let pi = &cases[1];
    assert_eq!(pi["caps"]["threads"], 4);
    let run = read_json(&tmp.path().join("r/run.json"));
    assert_eq!(run["options"]["profiles"][1]["name"], "raspberry-pi-5-8gb");
    // The rates reached here against each profile's spec sheet: both list
    // a bandwidth, only the Pi's lists a FLOP/s peak.
    let (air, pi) = (&run["cases"][0]["metrics"], &run["cases"][1]["metrics"]);
    let ratio = |m: &serde_json::Value, k: &str, v: &str, peak: &str| {
        m[k].as_f64().unwrap() / (m[v].as_f64().unwrap() / m[peak].as_f64().unwrap())
    };
    for m in [air, pi] {
        let r = ratio(m, "mbu_profile", "gbytes_per_s", "profile_gbytes_per_s");
        assert!((r - 1.0).abs() < 1e-9, "{m}");
    }
    assert!(air.get("mfu_profile").is_none(), "{air}");
    let r = ratio(
        pi,
        "mfu_profile",
        "gflops_per_s",
        "profile_peak_gflops_per_s",
    );
    assert!((r - 1.0).abs() < 1e-9, "{pi}");
}

#[test]
fn malformed_profiles_exit_2_naming_file_and_field() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("old-gpu.toml");
    write(
        &f,
        "name = \"old-gpu\"\ndescription = \"x\"\nkind = \"gpu\"\n[memory]\ntotal = { value = \"4GiB\", source = \"\" }\n",
    );
    let out = capbench()
        .args(["run", "--backend", "cpu", "--profile", f.to_str().unwrap()])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("old-gpu.toml") && err.contains("memory.total.source"),
        "{err}"
    );
    // A broken file in the user folder breaks `list profiles` the same way.
    write(&f, "name = \"old-gpu\"\nkind = [\n");
    let out = capbench()
        .args(["list", "profiles"])
        .env("CAPBENCH_PROFILE_DIR", tmp.path())
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("old-gpu.toml: line "), "{err}");
    // A good one is listed, replacing nothing.
    write(
        &f,
        "name = \"old-gpu\"\ndescription = \"my card\"\nkind = \"gpu\"\n[memory]\ntotal = { value = \"4GiB\", source = \"nvidia-smi\" }\n",
    );
    let out = capbench()
        .args(["list", "profiles"])
        .env("CAPBENCH_PROFILE_DIR", tmp.path())
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        table.contains("old-gpu") && table.contains("t4-16gb") && table.contains("m2-air-8gb"),
        "{table}"
    );
    // Unknown names and bad sizes are usage errors.
    for args in [
        &["run", "--profile", "cray-1"][..],
        &["run", "--mem-cap", "lots"][..],
        &["run", "--cpus", "0-x"][..],
        &["run", "--wgpu-limits", "ultra"][..],
        &["run", "--profile", "t4-16gb", "--mem-cap", "1GiB"][..],
    ] {
        let out = capbench().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn wgpu_tier_and_device_cap_refuse_with_a_clear_status() {
    if !wgpu_usable() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let limits = tmp.path().join("tiny.toml");
    write(&limits, "max_storage_buffer_binding_size = 8192\n");
    let (ok, cases) = run_cases(
        &[
            "--backend",
            "wgpu",
            "--workload",
            "kernel/gemm-f32-128",
            "--wgpu-limits",
            limits.to_str().unwrap(),
        ],
        &tmp.path().join("tier"),
    );
    assert!(!ok);
    let c = &cases[0];
    assert_eq!(c["id"], "kernel/gemm-f32-128@wgpu+wgpu=custom");
    assert_eq!(c["status"], "unsupported", "{}", c["status_detail"]);
    assert!(
        c["status_detail"]
            .as_str()
            .unwrap()
            .contains("binds at most 8192"),
        "{}",
        c["status_detail"]
    );
    let (ok, cases) = run_cases(
        &[
            "--backend",
            "wgpu",
            "--workload",
            "kernel/gemm-f32-128",
            "--device-mem-cap",
            "150000,1MiB",
        ],
        &tmp.path().join("dev"),
    );
    assert!(!ok);
    let (small, big) = (&cases[0], &cases[1]);
    assert_eq!(small["status"], "oom", "{}", small["status_detail"]);
    let p = &small["processes"][0];
    // a and b (64 KiB each) fit; c does not.
    assert_eq!(p["oom_cap_bytes"], 150000);
    assert_eq!(p["oom_requested_bytes"], 65536);
    assert_eq!(p["oom_in_use_bytes"], 131072);
    assert_eq!(big["status"], "ok", "{}", big["status_detail"]);
    // a, b, c, the readback and the dims; plus the two 16-byte timestamp
    // buffers when the GEMM is timed on the GPU.
    let ts = if big["processes"][0]["worker"]["timer"] == "gpu_timestamp_query" {
        32
    } else {
        0
    };
    assert_eq!(
        big["metrics"]["peak_device_bytes"],
        (4 * 65536 + 16 + ts) as f64
    );
    assert!(
        big["processes"][0]["worker"]["caps_applied"]["device_mem_cap_mechanism"]
            .as_str()
            .unwrap()
            .starts_with("counted")
    );
    // The engine's model workloads refuse the same way, with the numbers.
    let (ok, cases) = run_cases(
        &[
            "--backend",
            "wgpu",
            "--workload",
            "decode/dense-tiny/f32",
            "--device-mem-cap",
            "64KiB",
        ],
        &tmp.path().join("dev-decode"),
    );
    assert!(!ok);
    let c = &cases[0];
    assert_eq!(c["status"], "oom", "{}", c["status_detail"]);
    let p = &c["processes"][0];
    assert_eq!(p["oom_cap_bytes"], 65536, "{p}");
    let (req, used) = (
        p["oom_requested_bytes"].as_u64().unwrap(),
        p["oom_in_use_bytes"].as_u64().unwrap(),
    );
    assert!(req > 0 && used <= 65536 && used + req > 65536, "{p}");
}

#[test]
fn nvml_compute_caps_off_cuda_record_not_applied_and_run_on() {
    let tmp = tempfile::tempdir().unwrap();
    let (ok, cases) = run_cases(
        &[
            "--backend",
            "cpu",
            "--workload",
            "kernel/gemm-f32-128",
            "--power-limit",
            "150",
            "--lock-clocks",
            "900:1200",
        ],
        &tmp.path().join("r"),
    );
    assert!(ok);
    let c = &cases[0];
    assert_eq!(
        c["id"],
        "kernel/gemm-f32-128@cpu+power=150W+clocks=900:1200MHz"
    );
    assert_eq!(c["status"], "ok");
    let g = &c["processes"][0]["worker"]["caps_applied"]["gpu_compute"];
    assert_eq!(g["power_limit_w_requested"], 150.0);
    assert_eq!(
        g["power_limit_status"],
        "not applied: cpu is not a CUDA backend"
    );
    assert_eq!(
        g["lock_clocks_mhz_requested"],
        serde_json::json!([900, 1200])
    );
    assert!(
        g["lock_clocks_status"]
            .as_str()
            .unwrap()
            .starts_with("not applied: ")
    );
    for bad in [
        &["run", "--lock-clocks", "1410:900"][..],
        &["run", "--power-limit", "-5"][..],
    ] {
        let out = capbench().args(bad).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {}", stderr(&out));
    }
}
