//! The regression gate end to end: compare, baselines, calibration, exit codes.

mod common;

use std::path::Path;

use common::*;

/// A run of one small single-thread GEMM with 4 processes (single-thread:
/// the tests run in parallel, and a 2-thread kernel stalls whenever a
/// neighbour takes a core); `slowdown` injects extra work.
fn gemm_run(dir: &Path, slowdown: Option<&str>) {
    let mut args = vec![
        "run",
        "--quiet",
        "--backend",
        "cpu",
        "--threads",
        "1",
        "--workload",
        "kernel/gemm-f32-128",
        "--repeat",
        "4",
        "--out",
    ];
    let d = dir.to_str().unwrap();
    args.push(d);
    if let Some(s) = slowdown {
        args.extend(["--inject-slowdown", s]);
    }
    run_ok(&args);
}

fn compare(args: &[&str]) -> (Option<i32>, String) {
    let out = capbench().arg("compare").args(args).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &stderr(&out);
    (out.status.code(), text)
}

/// A copy of the real run in `from` with its timings replaced by a steady
/// 1 ms × `factor` (±0.2% jitter): compare is exercised end to end on files
/// of the real schema, and the verdict is free of the timing noise that
/// parallel tests put between worker processes.
fn steady_copy(from: &Path, to: &Path, factor: f64) {
    steady_copy_by_case(from, to, &format!("steady-copy-{factor}"), |_| factor);
}

/// As `steady_copy`, with case i at 1 ms × `factor_of(i)`, as run `run_id`.
fn steady_copy_by_case(from: &Path, to: &Path, run_id: &str, factor_of: impl Fn(usize) -> f64) {
    std::fs::create_dir_all(to).unwrap();
    let mut run = read_json(&from.join("run.json"));
    run["run_id"] = run_id.into();
    for (c, case) in run["cases"].as_array_mut().unwrap().iter_mut().enumerate() {
        let factor = factor_of(c);
        for (k, p) in case["processes"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .enumerate()
        {
            let samples: Vec<serde_json::Value> = (0..20)
                .map(|i| (1e-3 * factor * (1.0 + 0.001 * ((i + k) % 5) as f64 - 0.002)).into())
                .collect();
            p["worker"]["samples_wall_s"] = samples.into();
        }
        let h = &mut case["headline"];
        for k in ["value", "ci95_low", "ci95_high"] {
            h[k] = (h[k].as_f64().unwrap() / factor).into();
        }
    }
    std::fs::write(to.join("run.json"), serde_json::to_string(&run).unwrap()).unwrap();
}

#[test]
fn compare_passes_a_run_against_itself_and_fails_a_slowdown() {
    let tmp = tempfile::tempdir().unwrap();
    let (real, a, slow) = (
        tmp.path().join("real"),
        tmp.path().join("a"),
        tmp.path().join("slow"),
    );
    gemm_run(&real, None);
    // A real run against itself: identical samples, unchanged.
    let (code, text) = compare(&[real.to_str().unwrap(), real.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("unchanged"), "{text}");

    steady_copy(&real, &a, 1.0);
    steady_copy(&real, &slow, 1.25);
    let (code, text) = compare(&[
        a.to_str().unwrap(),
        slow.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(code, Some(1), "{text}");
    let v: serde_json::Value =
        serde_json::from_str(text.split("\ncapbench").next().unwrap()).unwrap();
    let case = &v["cases"][0];
    assert_eq!(case["verdict"], "regressed");
    assert_eq!(case["ci_basis"], "between_process");
    let ratio = case["ratio"].as_f64().unwrap();
    assert!(
        (ratio - 0.8).abs() < 1e-3,
        "25% more time is a ratio of 0.8: {ratio}"
    );

    let (_, md) = compare(&[
        a.to_str().unwrap(),
        slow.to_str().unwrap(),
        "--format",
        "md",
    ]);
    assert!(md.starts_with("### capbench compare: ❌"), "{md}");
    assert!(md.contains("| verdict | case |"), "{md}");
}

#[test]
fn the_injected_slowdown_is_real_and_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    gemm_run(&a, None);
    // Twice the time per iteration. The verdict is left to the gate trials
    // (scripts/gate-trials.sh): parallel tests make the spread too wide to
    // judge here, but the point estimate must show the slowdown.
    gemm_run(&b, Some("1.0"));
    let (_, text) = compare(&[a.to_str().unwrap(), b.to_str().unwrap(), "--format", "json"]);
    let v: serde_json::Value =
        serde_json::from_str(text.split("\ncapbench").next().unwrap()).unwrap();
    let ratio = v["cases"][0]["ratio"].as_f64().unwrap();
    assert!(ratio < 0.8, "twice the time must show: {ratio}");
    // The knob is never hidden in the results.
    let run = read_json(&b.join("run.json"));
    assert_eq!(run["options"]["inject_slowdown"], 1.0);
    let w = &run["cases"][0]["processes"][0]["worker"];
    assert_eq!(w["injected_extra_work"], 1.0);
}

#[test]
fn baselines_are_per_machine_and_a_mismatch_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("baselines");
    let root_s = root.to_str().unwrap();
    let a = tmp.path().join("a");
    gemm_run(&a, None);
    run_ok(&[
        "baseline",
        "save",
        "main",
        a.to_str().unwrap(),
        "--baselines-dir",
        root_s,
    ]);
    let listed =
        String::from_utf8(run_ok(&["baseline", "list", "--baselines-dir", root_s]).stdout).unwrap();
    assert!(
        listed.contains("main") && listed.contains("(this machine)"),
        "{listed}"
    );
    let shown = run_ok(&["baseline", "show", "main", "--baselines-dir", root_s]);
    let dir = String::from_utf8(shown.stdout).unwrap();
    assert!(Path::new(dir.trim()).join("run.json").exists());

    let (code, text) = compare(&[
        "--baseline",
        "main",
        "--baselines-dir",
        root_s,
        a.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{text}");

    // A NEW run from another machine: reported, not judged.
    let other = tmp.path().join("other");
    std::fs::create_dir(&other).unwrap();
    let mut run = read_json(&a.join("run.json"));
    run["env"]["machine_id"] = "0000000000000000".into();
    std::fs::write(other.join("run.json"), serde_json::to_string(&run).unwrap()).unwrap();
    let (code, text) = compare(&[
        "--baseline",
        "main",
        "--baselines-dir",
        root_s,
        other.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("machine fingerprint differs") && text.contains("incomparable"),
        "{text}"
    );
    let (code, _) = compare(&[
        "--baseline",
        "main",
        "--baselines-dir",
        root_s,
        other.to_str().unwrap(),
        "--fail-on-incomparable",
    ]);
    assert_eq!(code, Some(1));

    // A baseline saved only for another machine is an error naming both.
    run_ok(&[
        "baseline",
        "save",
        "foreign",
        other.to_str().unwrap(),
        "--baselines-dir",
        root_s,
    ]);
    let (code, text) = compare(&[
        "--baseline",
        "foreign",
        "--baselines-dir",
        root_s,
        a.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("exists only for machine 0000000000000000"),
        "{text}"
    );
}

#[test]
fn calibration_from_runs_is_stored_with_the_baseline_and_used() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("baselines");
    let root_s = root.to_str().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    gemm_run(&a, None);
    gemm_run(&b, None);
    let out = run_ok(&[
        "calibrate",
        "--from",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--baseline",
        "main",
        "--baselines-dir",
        root_s,
    ]);
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.contains("kernel/gemm-f32-128@cpu"), "{table}");
    let dir =
        String::from_utf8(run_ok(&["baseline", "show", "main", "--baselines-dir", root_s]).stdout)
            .unwrap();
    let cal = read_json(&Path::new(dir.trim()).join("calibration.json"));
    let noise = cal["cases"]["kernel/gemm-f32-128@cpu+threads=1"]["noise_rel"]
        .as_f64()
        .unwrap();
    assert!(noise >= 0.0);
    let (_, text) = compare(&[
        "--baseline",
        "main",
        "--baselines-dir",
        root_s,
        b.to_str().unwrap(),
        "--format",
        "json",
    ]);
    let v: serde_json::Value =
        serde_json::from_str(text.split("\ncapbench").next().unwrap()).unwrap();
    assert_eq!(v["calibrated"], true);
    let t = v["cases"][0]["threshold"].as_f64().unwrap();
    assert!((t - noise.max(0.05)).abs() < 1e-12, "{t} vs {noise}");
}

#[test]
fn compare_rejects_bad_input_with_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("run.json");
    write(&bad, "{\"schema_version\": 1,");
    let (code, text) = compare(&[bad.to_str().unwrap(), bad.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("run.json: line 1"), "{text}");
    let (code, text) = compare(&[
        "--baseline",
        "nope",
        "--baselines-dir",
        tmp.path().to_str().unwrap(),
        "x",
    ]);
    assert_eq!(code, Some(2), "{text}");
    let (code, _) = compare(&["a", "b", "--threshold", "200%"]);
    assert_eq!(code, Some(2));
}

/// One case identity for run and compare (issue 16, item 13): the cases of
/// a memory-cap sweep keep their cap in the name compare shows, and each is
/// paired with itself, not with the other cap's result.
#[test]
fn a_cap_sweep_compared_with_itself_pairs_each_cap_with_its_own() {
    let tmp = tempfile::tempdir().unwrap();
    let real = tmp.path().join("real");
    run_ok(&[
        "run",
        "--quiet",
        "--backend",
        "cpu",
        "--threads",
        "1",
        "--workload",
        "kernel/gemm-f32-128",
        "--mem-cap",
        "1GiB,2GiB",
        "--repeat",
        "2",
        "--out",
        real.to_str().unwrap(),
    ]);
    let sweep = tmp.path().join("sweep");
    // Each cap at its own steady time, so a wrong pairing shows a ratio ≠ 1.
    steady_copy_by_case(&real, &sweep, "cap-sweep", |i| (i + 1) as f64);
    let s = sweep.to_str().unwrap();
    let (code, text) = compare(&[s, s, "--format", "json"]);
    assert_eq!(code, Some(0), "{text}");
    let v: serde_json::Value =
        serde_json::from_str(text.split("\ncapbench").next().unwrap()).unwrap();
    let mut keys: Vec<&str> = v["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["key"].as_str().unwrap())
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "kernel/gemm-f32-128@cpu+threads=1+mem=1GiB",
            "kernel/gemm-f32-128@cpu+threads=1+mem=2GiB"
        ],
        "{text}"
    );
    for c in v["cases"].as_array().unwrap() {
        assert_eq!(c["verdict"], "unchanged", "{text}");
        let r = c["ratio"].as_f64().unwrap();
        assert!(
            (r - 1.0).abs() < 1e-9,
            "{} paired wrongly: {text}",
            c["key"]
        );
    }
}

/// A run file holding one case twice is refused (exit 2) and the message
/// names the case: compare would otherwise count it twice.
#[test]
fn compare_refuses_a_run_with_a_case_twice() {
    let tmp = tempfile::tempdir().unwrap();
    let real = tmp.path().join("real");
    gemm_run(&real, None);
    let twice = tmp.path().join("twice");
    std::fs::create_dir_all(&twice).unwrap();
    let mut run = read_json(&real.join("run.json"));
    let first = run["cases"][0].clone();
    run["cases"].as_array_mut().unwrap().push(first);
    std::fs::write(twice.join("run.json"), serde_json::to_string(&run).unwrap()).unwrap();
    for args in [
        [real.to_str().unwrap(), twice.to_str().unwrap()],
        [twice.to_str().unwrap(), real.to_str().unwrap()],
    ] {
        let (code, text) = compare(&args);
        assert_eq!(code, Some(2), "{text}");
        assert!(
            text.contains("twice") && text.contains("case kernel/gemm-f32-128@cpu+threads=1"),
            "{text}"
        );
        assert!(!text.contains("panicked"), "{text}");
    }
}
