//! llama.cpp as a backend end to end: `list backends` names it, and one run
//! on `cpu,llamacpp` measures the same workload on both engines side by
//! side, each verified against capbench's reference before timing. Without
//! the `llamacpp` feature the backend is refused with the rebuild hint.

mod common;

#[cfg(feature = "llamacpp")]
use common::read_json;
use common::{capbench, stderr, write};

const SUITE: &str = r#"name = "engines"
workloads = ["decode/dense-tiny/q4_0/p8g4", "prefill/dense-tiny/f16/p16", "train-step/dense-tiny/f32"]
[sampling]
repeat = 1
warmup_iters = 1
min_samples = 3
max_samples = 3
max_time_s = 0.01
target_ci_rel = 0.5
"#;

#[cfg(feature = "llamacpp")]
#[test]
fn cpu_and_llamacpp_run_side_by_side_verified() {
    let list = capbench().args(["list", "backends"]).output().unwrap();
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(
        text.lines()
            .any(|l| l.contains("llamacpp") && l.contains("AVX")),
        "{text}"
    );
    let tmp = tempfile::tempdir().unwrap();
    let suite = tmp.path().join("s.toml");
    write(&suite, SUITE);
    let dir = tmp.path().join("run");
    let out = capbench()
        .args([
            "run",
            "--quiet",
            "--threads",
            "1",
            "--backend",
            "cpu,llamacpp",
            "--suite",
        ])
        .arg(&suite)
        .arg("--out")
        .arg(&dir)
        .output()
        .unwrap();
    let run = read_json(&dir.join("run.json"));
    let cases = run["cases"].as_array().unwrap();
    let case = |w: &str, b: &str| {
        cases
            .iter()
            .find(|c| c["workload"]["name"] == w && c["backend"] == b)
            .unwrap_or_else(|| panic!("no {w} on {b}: {}", stderr(&out)))
            .clone()
    };
    for w in ["decode/dense-tiny/q4_0/p8g4", "prefill/dense-tiny/f16/p16"] {
        let c = case(w, "llamacpp");
        assert_eq!(c["status"], "ok", "{w}: {c}");
        assert_eq!(c["verification"]["passed"], true, "{w}");
        assert!(c["headline"]["value"].as_f64().unwrap() > 0.0, "{w}");
        assert!(
            c["device"]["driver"]
                .as_str()
                .unwrap()
                .starts_with("llama.cpp")
        );
        assert_eq!(case(w, "cpu")["status"], "ok", "{w}");
    }
    // What llama.cpp does not run, the run says so and why.
    let np = run["not_planned"].as_array().unwrap();
    assert!(
        np.iter()
            .any(|n| n["workload"] == "train-step/dense-tiny/f32"
                && n["backend"] == "llamacpp"
                && n["reason"].as_str().unwrap().contains("decode")),
        "{np:?}"
    );
    // The report puts the engines side by side.
    let report = capbench().arg("report").arg(&dir).output().unwrap();
    assert!(report.status.success(), "{}", stderr(&report));
    let rep = read_json(&dir.join("report/report.json"));
    let engines = rep["figures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "engines")
        .unwrap()
        .clone();
    assert_eq!(engines["status"], "drawn", "{engines}");
}

#[cfg(not(feature = "llamacpp"))]
#[test]
fn llamacpp_without_the_feature_says_how_to_build_it() {
    let tmp = tempfile::tempdir().unwrap();
    let suite = tmp.path().join("s.toml");
    write(&suite, SUITE);
    let out = capbench()
        .args(["run", "--quiet", "--backend", "llamacpp", "--suite"])
        .arg(&suite)
        .arg("--out")
        .arg(tmp.path().join("run"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--features llamacpp"),
        "{}",
        stderr(&out)
    );
    let list = capbench().args(["list", "backends"]).output().unwrap();
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(text.contains("llamacpp"), "{text}");
}
