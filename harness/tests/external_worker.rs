//! External backends through the worker protocol (docs/worker-protocol.md),
//! with a tiny fake worker (tests/fixtures/fake_worker.py): its results go
//! through the same statistics and schema, and a bad worker (garbage JSON, a
//! crash, a hang, a false claim, a memory hog, a missing program) ends as
//! that case's status while the other cases keep their measurements.

mod common;

use std::path::{Path, PathBuf};

use common::{capbench, read_json, stderr, write};

fn fake_worker() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fake_worker.py")
}

/// A suite with one cpu GEMM and the fake worker as backend `fake` in `mode`.
fn suite(dir: &Path, mode: &str) -> PathBuf {
    let p = dir.join("suite.toml");
    write(
        &p,
        &format!(
            r#"name = "ext"
workloads = ["kernel/gemm-f32-8"]
backends = ["cpu", "fake"]

[backend.fake]
command = ["python3", "{}", "{mode}"]

[sampling]
repeat = 2
warmup_iters = 1
min_samples = 3
max_samples = 10
max_time_s = 0.05
target_ci_rel = 0.5
"#,
            fake_worker().display()
        ),
    );
    p
}

/// Runs the suite in `mode` (plus `extra` flags); returns (exit code, stderr,
/// the cases of run.json by backend).
fn run_mode(mode: &str, extra: &[&str]) -> (i32, String, serde_json::Value, serde_json::Value) {
    let tmp = tempfile::tempdir().unwrap();
    let s = suite(tmp.path(), mode);
    let out_dir = tmp.path().join("run");
    let out = capbench()
        .args(["run", "--quiet", "--suite"])
        .arg(&s)
        .arg("--out")
        .arg(&out_dir)
        .args(extra)
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(!err.contains("panicked"), "{err}");
    let run = read_json(&out_dir.join("run.json"));
    let cases = run["cases"].as_array().unwrap().clone();
    let by = |b: &str| {
        cases
            .iter()
            .find(|c| c["backend"] == b)
            .unwrap_or_else(|| panic!("no {b} case in {cases:?}"))
            .clone()
    };
    let (cpu, fake) = (by("cpu"), by("fake"));
    // Whatever the external worker did, the cpu case kept its measurement.
    assert_eq!(cpu["status"], "ok", "{cpu}");
    assert!(cpu["stats"].is_object(), "{cpu}");
    // And each finished case was on disk, one line each.
    let journal = std::fs::read_to_string(out_dir.join("cases.jsonl")).unwrap();
    assert_eq!(journal.lines().count(), 2, "{journal}");
    (out.status.code().unwrap_or(-1), err, cpu, fake)
}

#[test]
fn a_protocol_worker_is_measured_like_any_backend() {
    let (code, err, _, fake) = run_mode("ok", &["--threads", "1"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(fake["status"], "ok", "{fake}");
    assert_eq!(fake["verification"]["passed"], true);
    // The samples of both processes went through the same statistics.
    assert_eq!(fake["stats"]["processes_ok"], 2, "{fake}");
    assert!(
        fake["metrics"]["gflops_per_s"].as_f64().unwrap() > 0.0,
        "{fake}"
    );
    assert_eq!(fake["device"]["driver"], "fake 0.1", "{fake}");
    let p = &fake["processes"][0]["worker"];
    assert_eq!(p["samples_wall_s"].as_array().unwrap().len(), 5);
    let caps = &p["caps_applied"];
    assert!(
        caps["enforced_by"][0]
            .as_str()
            .unwrap()
            .contains("OMP_NUM_THREADS"),
        "{caps}"
    );
}

#[test]
fn compare_engines_puts_two_backends_of_one_run_side_by_side() {
    let tmp = tempfile::tempdir().unwrap();
    let s = suite(tmp.path(), "ok");
    let run_dir = tmp.path().join("run");
    let out = capbench()
        .args(["run", "--quiet", "--threads", "1", "--suite"])
        .arg(&s)
        .arg("--out")
        .arg(&run_dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let compare = |engines: &str| {
        capbench()
            .args(["compare", "--engines", engines])
            .arg(&run_dir)
            .output()
            .unwrap()
    };
    let out = compare("cpu,fake");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    // A comparison, not a gate: exit 0 whichever engine is faster.
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert!(text.contains("engines: fake against cpu"), "{text}");
    assert!(
        text.contains("kernel/gemm-f32-8@cpu→fake+threads=1"),
        "{text}"
    );
    assert!(!text.contains("not in the"), "the pair matched: {text}");
    // No workload on both: exit 2, naming the backends the run holds.
    let out = compare("cpu,llamacpp");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("backends there: cpu, fake"),
        "{}",
        stderr(&out)
    );
    for bad in ["cpu", "cpu,cpu", ",fake"] {
        let out = compare(bad);
        assert_eq!(out.status.code(), Some(2), "{bad}");
        assert!(stderr(&out).contains("BASE,NEW"), "{bad}: {}", stderr(&out));
    }
}

#[test]
fn garbage_json_is_an_error_naming_the_protocol() {
    let (code, _, _, fake) = run_mode("garbage", &[]);
    assert_eq!(code, 1);
    assert_eq!(fake["status"], "error", "{fake}");
    let d = fake["status_detail"].as_str().unwrap();
    assert!(
        d.contains("breaks the worker protocol") && d.contains("worker-protocol.md"),
        "{d}"
    );
}

#[test]
fn a_crashing_worker_is_crashed_with_its_last_words() {
    let (code, _, _, fake) = run_mode("crash", &[]);
    assert_eq!(code, 1);
    assert_eq!(fake["status"], "crashed", "{fake}");
    let d = fake["status_detail"].as_str().unwrap();
    assert!(
        d.contains("code 1") && d.contains("fake engine fell over"),
        "{d}"
    );
}

#[test]
fn a_hanging_worker_times_out() {
    let (code, _, _, fake) = run_mode("hang", &["--case-timeout", "2"]);
    assert_eq!(code, 1);
    assert_eq!(fake["status"], "timeout", "{fake}");
}

#[test]
fn a_wrong_answer_is_failed_verification_and_not_timed() {
    let (_, _, _, fake) = run_mode("wrong", &[]);
    assert_eq!(fake["status"], "failed_verification", "{fake}");
    let w = &fake["processes"][0]["worker"];
    assert_eq!(w["samples_wall_s"].as_array().unwrap().len(), 0, "{w}");
}

#[test]
fn a_passed_claim_outside_the_tolerance_is_refused() {
    let (_, _, _, fake) = run_mode("liar", &[]);
    assert_eq!(fake["status"], "error", "{fake}");
    let d = fake["status_detail"].as_str().unwrap();
    assert!(d.contains("verification says passed"), "{d}");
}

#[test]
fn a_missing_requirement_is_unavailable_with_the_reason() {
    let (code, _, _, fake) = run_mode("unavailable", &[]);
    assert_eq!(code, 1);
    assert_eq!(fake["status"], "unavailable", "{fake}");
    let d = fake["status_detail"].as_str().unwrap();
    assert!(d.contains("fakeengine"), "{d}");
}

#[cfg(target_os = "linux")]
#[test]
fn the_memory_cap_is_enforced_from_outside() {
    let (_, _, cpu, fake) = run_mode("hog", &["--mem-cap", "256MiB"]);
    assert_eq!(fake["status"], "oom", "{fake}");
    let d = fake["status_detail"].as_str().unwrap();
    assert!(d.contains("resident set"), "{d}");
    assert_eq!(cpu["caps"]["mem_cap_bytes"], 256u64 << 20);
}

#[test]
fn a_missing_program_is_unavailable() {
    let tmp = tempfile::tempdir().unwrap();
    let s = tmp.path().join("s.toml");
    write(
        &s,
        "name = \"x\"\nworkloads = [\"kernel/gemm-f32-8\"]\nbackends = [\"ghost\"]\n[backend.ghost]\ncommand = [\"/nonexistent/engine\"]\n[sampling]\nrepeat = 1\n",
    );
    let out_dir = tmp.path().join("run");
    let out = capbench()
        .args(["run", "--quiet", "--suite"])
        .arg(&s)
        .arg("--out")
        .arg(&out_dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let run = read_json(&out_dir.join("run.json"));
    let c = &run["cases"][0];
    assert_eq!(c["status"], "unavailable", "{c}");
    assert!(
        c["status_detail"]
            .as_str()
            .unwrap()
            .contains("/nonexistent/engine: not found"),
        "{c}"
    );
}

#[test]
fn bad_backend_tables_are_exit_2_naming_the_place() {
    let tmp = tempfile::tempdir().unwrap();
    for (table, want) in [
        (
            "[backend.cpu]\ncommand = [\"x\"]\n",
            "capbench's own backends",
        ),
        ("[backend.e]\ncommand = []\n", "`command` is empty"),
        (
            "[backend.e]\ncommand = [\"x\"]\nworkloads = [\"[\"]\n",
            "not a valid glob",
        ),
        ("[backend.e]\ncmd = [\"x\"]\n", "cmd"),
    ] {
        let s = tmp.path().join("s.toml");
        write(
            &s,
            &format!("name = \"x\"\nworkloads = [\"kernel/gemm-f32-8\"]\n{table}"),
        );
        let out = capbench()
            .args(["run", "--quiet", "--suite"])
            .arg(&s)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{table}");
        let e = stderr(&out);
        assert!(e.contains("s.toml") && e.contains(want), "{table}: {e}");
    }
}

#[test]
fn list_backends_probes_the_built_in_torch_worker() {
    // A Python without torch: listed, not usable, with the import error.
    let out = capbench()
        .args(["list", "backends", "--json"])
        .env("CAPBENCH_PYTHON", "/nonexistent/python")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let torch = v
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["backend"] == "torch")
        .expect("torch listed")
        .clone();
    assert_eq!(torch["usable"], false, "{torch}");
    let note = torch["note"].as_str().unwrap();
    assert!(
        note.contains("/nonexistent/python: not found") && note.contains("torch_worker.py"),
        "{note}"
    );
}

#[test]
fn a_model_too_big_to_hand_over_is_unsupported_without_writing_it() {
    let tmp = tempfile::tempdir().unwrap();
    let s = tmp.path().join("s.toml");
    write(
        &s,
        &format!(
            "name = \"x\"\nworkloads = [\"decode/llama-2-7b/f32\"]\nbackends = [\"fake\"]\n[backend.fake]\ncommand = [\"python3\", \"{}\", \"ok\"]\n[sampling]\nrepeat = 1\n",
            fake_worker().display()
        ),
    );
    let out_dir = tmp.path().join("run");
    let out = capbench()
        .args(["run", "--quiet", "--suite"])
        .arg(&s)
        .arg("--out")
        .arg(&out_dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let c = &read_json(&out_dir.join("run.json"))["cases"][0];
    assert_eq!(c["status"], "unsupported", "{c}");
    assert!(
        c["status_detail"].as_str().unwrap().contains("at most 8"),
        "{c}"
    );
}
