//! `capbench report` and `run --report` on the real binary: the report
//! folder's files, formats, bad input (exit 2), and the HTML page rendered
//! in headless Chromium (tests/browser; skipped, with a note, where
//! Chromium is not installed and CI does not require it).

mod browser;
mod common;

use std::path::Path;

use common::*;

fn run_with_report(dir: &Path) {
    let mut args = small_cpu_run(dir);
    args.push("--report".into());
    run_ok(&args);
}

#[test]
fn run_with_report_then_report_in_chosen_formats() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    run_with_report(&dir);
    let rep = dir.join("report");
    for f in [
        "index.html",
        "report.md",
        "cases.csv",
        "report.json",
        "plots/throughput.svg",
        "plots/throughput.png",
        "plots/latency.svg",
        "plots/roofline.png",
        "plots/pareto-error.svg",
    ] {
        assert!(rep.join(f).is_file(), "{f} missing in {}", rep.display());
    }
    let csv = std::fs::read_to_string(rep.join("cases.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 2, "{csv}");
    assert!(lines[1].contains("kernel/gemm-f32-128@cpu"), "{csv}");
    let json = read_json(&rep.join("report.json"));
    assert_eq!(json["schema_version"], 1);
    let figures = json["figures"].as_array().unwrap();
    let status = |id: &str| {
        figures
            .iter()
            .find(|f| f["id"] == id)
            .map(|f| f["status"].as_str().unwrap().to_string())
    };
    assert_eq!(status("throughput").as_deref(), Some("drawn"));
    // Every case carries a labelled energy figure, so energy is drawn; this
    // run has no training, so the loss figure is skipped with a note.
    assert_eq!(status("energy-per-iter").as_deref(), Some("drawn"));
    assert_eq!(status("training-loss").as_deref(), Some("skipped"));
    let svg = std::fs::read_to_string(rep.join("plots/throughput.svg")).unwrap();
    // plotters writes each text on a line of its own.
    assert!(
        svg.contains("\nkernel/gemm-f32-128\n") && svg.contains("\ncpu\n"),
        "category or series name missing"
    );

    // Again from the folder, only CSV, elsewhere.
    let out = tmp.path().join("elsewhere");
    let o = run_ok(&[
        "report",
        dir.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--format",
        "csv",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        out.to_str().unwrap()
    );
    assert!(out.join("cases.csv").is_file());
    assert!(out.join("plots/throughput.png").is_file());
    assert!(!out.join("index.html").exists() && !out.join("report.md").exists());
    assert_eq!(std::fs::read_to_string(out.join("cases.csv")).unwrap(), csv);

    // Dashboard exports, from the same run.
    let dash = tmp.path().join("dash");
    run_ok(&[
        "report",
        dir.to_str().unwrap(),
        "--out",
        dash.to_str().unwrap(),
        "--format",
        "bmf,gab",
    ]);
    let bmf = read_json(&dash.join("bmf.json"));
    let gemm = &bmf["kernel/gemm-f32-128@cpu"];
    let g = &gemm["gflops_per_s"];
    let v = g["value"].as_f64().unwrap();
    assert!(
        g["lower_value"].as_f64().unwrap() <= v && v <= g["upper_value"].as_f64().unwrap(),
        "{bmf:#}"
    );
    assert!(gemm["latency"]["value"].as_f64().unwrap() > 0.0, "{bmf:#}");
    let bigger = read_json(&dash.join("gab-bigger.json"));
    assert_eq!(bigger[0]["name"], "kernel/gemm-f32-128@cpu", "{bigger:#}");
    assert_eq!(bigger[0]["unit"], "GFLOP/s");
    assert_eq!(bigger[0]["value"].as_f64(), Some(v));
    let smaller = read_json(&dash.join("gab-smaller.json"));
    assert_eq!(smaller[0]["unit"], "ms", "{smaller:#}");
    assert!(
        !dash.join("index.html").exists(),
        "only the formats asked for"
    );

    // JUnit from compare: the run against itself, one passing test case.
    let junit = tmp.path().join("junit.xml");
    run_ok(&[
        "compare",
        dir.to_str().unwrap(),
        dir.to_str().unwrap(),
        "--junit",
        junit.to_str().unwrap(),
    ]);
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.contains("<testcase classname=\"capbench.compare\" name=\"kernel/gemm-f32-128@cpu\">"),
        "{xml}"
    );
    assert!(xml.contains("tests=\"1\" failures=\"0\""), "{xml}");

    // The sort script ran to its end, the figures are inline SVG (no <img>).
    browser::check_page(
        &rep.join("index.html"),
        &["data-sortable=\"ready\"", "<svg"],
        0,
    );
}

#[test]
fn report_of_missing_or_damaged_runs_exits_2_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let out = capbench()
        .args(["report", tmp.path().join("nope").to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let bad = tmp.path().join("bad");
    std::fs::create_dir(&bad).unwrap();
    write(
        &bad.join("run.json"),
        "{\"schema_version\": 1, \"run_id\": 5}",
    );
    let out = capbench()
        .args(["report", bad.to_str().unwrap()])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("run.json") && err.contains("run_id"), "{err}");
    assert!(
        !bad.join("report").exists(),
        "nothing written for bad input"
    );
}
