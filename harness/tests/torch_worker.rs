//! The reference PyTorch worker (workers/torch_worker.py) end to end: its
//! train step and decode are verified against capbench's reference and
//! sampled. Runs where `CAPBENCH_PYTHON` (default `python3`) imports torch
//! and safetensors; skipped with the reason printed otherwise (CI has no
//! torch).

mod common;

use common::{capbench, read_json, stderr, write};

fn python() -> String {
    std::env::var("CAPBENCH_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Why torch cannot run here, or `None` when it can.
fn torch_missing() -> Option<String> {
    let out = std::process::Command::new(python())
        .args(["-c", "import torch, safetensors"])
        .output();
    match out {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .last()
                .unwrap_or("import failed")
                .to_string(),
        ),
        Err(e) => Some(format!("{}: {e}", python())),
    }
}

#[test]
fn torch_train_step_and_decode_are_verified_then_sampled() {
    if let Some(why) = torch_missing() {
        eprintln!(
            "skipping the PyTorch worker test: {why} (set CAPBENCH_PYTHON to a Python with torch and safetensors)"
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let suite = tmp.path().join("s.toml");
    write(
        &suite,
        r#"name = "torch"
workloads = ["train-step/dense-tiny/f32", "train-step/dense-tiny/bf16", "decode/dense-tiny/f32", "decode/dense-tiny/bf16", "decode/dense-tiny/q8_0", "train-step/moe-mla-tiny/f32"]
backends = ["torch"]
[sampling]
repeat = 1
warmup_iters = 1
min_samples = 3
max_samples = 3
max_time_s = 0.01
target_ci_rel = 0.5
"#,
    );
    let dir = tmp.path().join("run");
    let out = capbench()
        .args(["run", "--quiet", "--threads", "1", "--suite"])
        .arg(&suite)
        .arg("--out")
        .arg(&dir)
        .env("CAPBENCH_PYTHON", python())
        .output()
        .unwrap();
    let run = read_json(&dir.join("run.json"));
    let case = |w: &str| {
        run["cases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["workload"]["name"] == w)
            .unwrap_or_else(|| panic!("no {w}: {}", stderr(&out)))
            .clone()
    };
    for w in [
        "train-step/dense-tiny/f32",
        "train-step/dense-tiny/bf16",
        "decode/dense-tiny/f32",
        "decode/dense-tiny/bf16",
    ] {
        let c = case(w);
        assert_eq!(c["status"], "ok", "{w}: {c}");
        assert_eq!(c["verification"]["passed"], true, "{w}");
        assert!(c["metrics"]["tokens_per_s"].as_f64().unwrap() > 0.0, "{w}");
        assert!(
            c["device"]["driver"]
                .as_str()
                .unwrap()
                .starts_with("torch ")
        );
    }
    assert!(
        case("decode/dense-tiny/f32")["verification"]["mean_kl"]
            .as_f64()
            .unwrap()
            < 1e-6
    );
    assert!(
        case("train-step/dense-tiny/f32")["verification"]["note"]
            .as_str()
            .unwrap()
            .contains("vs reference")
    );
    // What it does not run, it says so.
    assert_eq!(case("decode/dense-tiny/q8_0")["status"], "unsupported");
    assert_eq!(case("train-step/moe-mla-tiny/f32")["status"], "unsupported");
}
