//! The interleaved A/B and the run history end to end: `ab` with a known
//! slowdown, `history add` (concurrent, and refusing a damaged run),
//! `list`, `prune`, and `analyze` finding a planted step.

mod browser;
mod common;

use std::path::{Path, PathBuf};

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_capbench");

#[test]
fn ab_interleaves_two_builds_and_finds_an_injected_slowdown() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("ab");
    let o = capbench()
        .args([
            "ab", "--base", BIN, "--new", BIN, "--pairs", "8", "--seed", "7",
        ])
        .args(["--inject-slowdown-new", "1.0", "--format", "json", "--out"])
        .arg(&out)
        .args(["--", "--backend", "cpu", "--threads", "1"])
        .args(["--workload", "kernel/gemm-f32-128"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{text}\n{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let case = &v["cases"][0];
    // Twice the work per iteration: NEW runs at about half the rate. The
    // pairing and the low percentile keep parallel tests' noise out.
    assert_eq!(case["verdict"], "regressed", "{case}");
    assert_eq!(case["pairs_used"], 8);
    let r = case["ratio"].as_f64().unwrap();
    assert!((0.4..0.65).contains(&r), "{r}");
    let orders = v["orders"].as_array().unwrap();
    assert_eq!(orders.len(), 8);
    assert!(v["method"].as_str().unwrap().contains("signed-rank"));
    // Nothing measured is lost: every pair's runs of both sides are kept.
    for side in ["base", "new"] {
        for i in 1..=8 {
            let run = read_json(&out.join(side).join(format!("pair-{i:02}/run.json")));
            let inj = &run["options"]["inject_slowdown"];
            assert_eq!(side == "new", inj == 1.0, "{side} {i}: {inj}");
        }
    }
    assert!(read_json(&out.join("ab.json"))["headline"].is_string());
    let md = std::fs::read_to_string(out.join("ab.md")).unwrap();
    assert!(md.starts_with("### capbench ab: ❌"), "{md}");
}

#[test]
fn ab_refuses_bad_sides_and_reserved_run_flags() {
    let tmp = tempfile::tempdir().unwrap();
    let o = capbench()
        .args([
            "ab",
            "--base",
            BIN,
            "--new",
            "no-such-build-or-rev",
            "--out",
        ])
        .arg(tmp.path().join("x"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("neither a file nor a git revision"),
        "{}",
        stderr(&o)
    );
    let o = capbench()
        .args(["ab", "--base", BIN, "--new", BIN, "--", "--repeat", "3"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("--repeat is set by ab"),
        "{}",
        stderr(&o)
    );
    let o = capbench()
        .args(["ab", "--base", BIN, "--new", BIN, "--pairs", "3"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
}

/// `n` copies of one real run, as runs `r00…`, started a minute apart, the
/// headline scaled by `factor(i)` (the history reads only headlines).
fn copies(real: &Path, into: &Path, n: usize, factor: impl Fn(usize) -> f64) -> Vec<PathBuf> {
    (0..n)
        .map(|i| {
            let dir = into.join(format!("r{i:02}"));
            std::fs::create_dir_all(&dir).unwrap();
            let mut run = read_json(&real.join("run.json"));
            run["run_id"] = format!("20260101T00{i:02}00Z-{i}").into();
            run["started_at"] = format!("2026-01-01T00:{i:02}:00Z").into();
            for case in run["cases"].as_array_mut().unwrap() {
                let h = &mut case["headline"];
                for k in ["value", "ci95_low", "ci95_high"] {
                    h[k] = (h[k].as_f64().unwrap() * factor(i)).into();
                }
                // A tight CI (±0.5%): the step, not the CI, is the signal.
                let v = h["value"].as_f64().unwrap();
                h["ci95_low"] = (v * 0.995).into();
                h["ci95_high"] = (v * 1.005).into();
            }
            write(&dir.join("run.json"), &run.to_string());
            dir
        })
        .collect()
}

fn history(args: &[&str], dir: &Path) -> std::process::Output {
    capbench()
        .arg("history")
        .args(args)
        .arg("--dir")
        .arg(dir)
        .output()
        .unwrap()
}

fn index_of(hist: &Path) -> serde_json::Value {
    let machines: Vec<_> = std::fs::read_dir(hist).unwrap().collect();
    assert_eq!(machines.len(), 1, "one machine fingerprint");
    read_json(&machines[0].as_ref().unwrap().path().join("main/index.json"))
}

#[test]
fn concurrent_adds_all_land_and_a_damaged_run_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let real = tmp.path().join("real");
    run_ok(&small_cpu_run(&real));
    let runs = copies(&real, tmp.path(), 8, |_| 1.0);
    let hist = tmp.path().join("history");
    let children: Vec<_> = runs
        .iter()
        .enumerate()
        .map(|(i, r)| {
            capbench()
                .args(["history", "add", "--branch", "main", "--commit"])
                .arg(format!("c{i:02}"))
                .arg(r)
                .arg("--dir")
                .arg(&hist)
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let index = index_of(&hist);
    let entries = index["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 8, "{index}");
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(e["commit"], format!("c{i:02}"), "sorted by time");
        assert!(
            hist.join(e["path"].as_str().unwrap())
                .join("run.json")
                .is_file()
        );
    }
    // Adding a run twice is refused.
    let o = history(
        &["add", "--branch", "main", runs[0].to_str().unwrap()],
        &hist,
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));

    // A damaged run: exit 2 naming the file, the history as it was.
    let bad = tmp.path().join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    let text = std::fs::read_to_string(runs[1].join("run.json")).unwrap();
    write(&bad.join("run.json"), &text[..text.len() / 2]);
    let before = index_of(&hist);
    let o = history(&["add", "--branch", "main", bad.to_str().unwrap()], &hist);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("bad/run.json"), "{}", stderr(&o));
    assert_eq!(index_of(&hist), before);
    let o = history(&["list", "--json"], &hist);
    assert!(o.status.success());
    let listed: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 8);

    // A stored entry damaged later: analyze names it and exits 2.
    let stored = hist
        .join(entries[3]["path"].as_str().unwrap())
        .join("run.json");
    write(&stored, "{");
    let o = history(&["analyze"], &hist);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains(entries[3]["run_id"].as_str().unwrap()),
        "{}",
        stderr(&o)
    );
}

#[test]
fn analyze_finds_a_planted_step_and_prune_keeps_the_newest() {
    let tmp = tempfile::tempdir().unwrap();
    let real = tmp.path().join("real");
    run_ok(&small_cpu_run(&real));
    // 14 runs; from run 9 on the headline is 20% lower, with ±1% wiggle.
    let wiggle = [
        1.0, 0.99, 1.01, 1.0, 0.995, 1.005, 0.99, 1.01, 1.0, 1.0, 0.99, 1.01, 1.0, 0.995,
    ];
    let runs = copies(&real, tmp.path(), 14, |i| {
        wiggle[i] * if i >= 9 { 0.8 } else { 1.0 }
    });
    let hist = tmp.path().join("history");
    for (i, r) in runs.iter().enumerate() {
        let c = format!("c{i:02}");
        let o = history(
            &[
                "add",
                "--branch",
                "main",
                "--commit",
                &c,
                r.to_str().unwrap(),
            ],
            &hist,
        );
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let o = history(&["analyze", "--format", "json"], &hist);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let case = &v["cases"][0];
    assert_eq!(case["verdict"], "regressed", "{case}");
    let cps = case["change_points"].as_array().unwrap();
    assert_eq!(cps.len(), 1, "{case}");
    assert_eq!(cps[0]["commit"], "c09");
    assert_eq!(cps[0]["direction"], "regression");
    let mag = cps[0]["magnitude_rel"].as_f64().unwrap();
    assert!((mag + 0.2).abs() < 0.02, "{mag}");
    assert!(cps[0]["confidence"].as_f64().unwrap() > 0.99);

    // The dashboard of the same analysis: a trend plot per case, the page
    // with the change at c09, whole in a browser; exit 1 as for analyze.
    let page = tmp.path().join("page");
    let o = history(&["report", "--out", page.to_str().unwrap()], &hist);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let html = std::fs::read_to_string(page.join("index.html")).unwrap();
    assert!(
        html.contains("<code>c09</code>") && html.contains("-20."),
        "{html}"
    );
    assert!(
        page.join("plots/trend-kernel-gemm-f32-128-cpu.png")
            .is_file()
    );
    browser::check_page(&page.join("index.html"), &["id=\"change-points\""], 1);

    let o = history(&["prune", "--keep", "5"], &hist);
    assert!(o.status.success(), "{}", stderr(&o));
    let entries = index_of(&hist)["entries"].as_array().unwrap().clone();
    assert_eq!(entries.len(), 5);
    assert_eq!(entries[0]["commit"], "c09");
    let o = history(&["analyze", "--format", "json"], &hist);
    assert_eq!(o.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["cases"][0]["verdict"], "too_few_runs");
}
