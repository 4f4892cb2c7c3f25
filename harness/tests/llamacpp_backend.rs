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

/// llama.cpp allocates and maps the model outside Rust's allocator: the
/// resident-set watch still ends a case over `--mem-cap` as `oom`.
#[cfg(feature = "llamacpp")]
#[test]
fn llamacpp_is_held_to_the_memory_cap() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("small-f32.gguf");
    let export = capbench()
        .args([
            "export-gguf",
            "--model",
            "dense-small",
            "--format",
            "f32",
            "--out",
        ])
        .arg(&model)
        .output()
        .unwrap();
    assert!(export.status.success(), "{}", stderr(&export));
    let suite = tmp.path().join("s.toml");
    write(
        &suite,
        r#"name = "capped"
workloads = ["decode/gguf/f32/p8g4"]
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
        .args(["run", "--quiet", "--threads", "1", "--backend", "llamacpp"])
        .args(["--mem-cap", "48MiB,1GiB", "--suite"])
        .arg(&suite)
        .arg("--model")
        .arg(&model)
        .arg("--out")
        .arg(&dir)
        .output()
        .unwrap();
    let run = read_json(&dir.join("run.json"));
    let cases = run["cases"].as_array().unwrap();
    let status = |cap: &str| {
        cases
            .iter()
            .find(|c| c["id"].as_str().unwrap().contains(cap))
            .unwrap_or_else(|| panic!("no case under {cap}: {}", stderr(&out)))["status"]
            .clone()
    };
    assert_eq!(status("mem=48MiB"), "oom", "{}", stderr(&out));
    assert_eq!(status("mem=1GiB"), "ok", "{}", stderr(&out));
}

/// A synthetic model is exported for llama.cpp once per run, into the run's
/// model cache (never into the system's temporary folder): the second
/// process reads the same file, proves it by hash and is not verified again;
/// the export goes with the run's scratch folder.
#[cfg(feature = "llamacpp")]
#[test]
fn llamacpp_exports_each_model_once_per_run() {
    let tmp = tempfile::tempdir().unwrap();
    let sys_tmp = tmp.path().join("tmp");
    std::fs::create_dir(&sys_tmp).unwrap();
    let dir = tmp.path().join("run");
    let out = capbench()
        .env("TMPDIR", &sys_tmp)
        .args(["run", "--quiet", "--threads", "1", "--backend", "llamacpp"])
        .args(["--workload", "decode/dense-tiny/q8_0/p8g4", "--repeat", "2"])
        .arg("--out")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let run = read_json(&dir.join("run.json"));
    let case = &run["cases"][0];
    assert_eq!(case["status"], "ok", "{}", case["status_detail"]);
    let ps = case["processes"].as_array().unwrap();
    let (p0, p1) = (&ps[0]["worker"], &ps[1]["worker"]);
    assert_eq!(p0["weights"]["cache"], "built", "{}", p0["weights"]);
    assert!(
        p0["weights"]["detail"]
            .as_str()
            .unwrap()
            .ends_with(".llama.gguf"),
        "{}",
        p0["weights"]
    );
    assert_eq!(p1["weights"]["cache"], "hit", "{}", p1["weights"]);
    assert_eq!(p1["weights"]["sha256"], p0["weights"]["sha256"]);
    assert_eq!(p0["verification"]["passed"], true);
    assert_eq!(p1["verified_by_process"], 0);
    assert!(!dir.join(".work").exists());
    let left: Vec<_> = std::fs::read_dir(&sys_tmp).unwrap().collect();
    assert!(left.is_empty(), "left in the temporary folder: {left:?}");
}

/// A run of one decode case on `backend`, its cases and the process output.
#[cfg(feature = "llamacpp")]
fn decode_on(backend: &str, env: &[(&str, &str)]) -> (std::process::Output, serde_json::Value) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let out = capbench()
        .envs(env.iter().copied())
        .args(["run", "--quiet", "--threads", "1", "--repeat", "1"])
        .args([
            "--backend",
            backend,
            "--workload",
            "decode/dense-tiny/q4_0/p8g4",
        ])
        .arg("--out")
        .arg(&dir)
        .output()
        .unwrap();
    let cases = if dir.join("run.json").exists() {
        read_json(&dir.join("run.json"))["cases"].clone()
    } else {
        serde_json::Value::Null
    };
    (out, cases)
}

/// Built without a GPU backend of llama.cpp, a GPU offload is refused
/// before anything runs, with the feature that builds it.
#[cfg(all(feature = "llamacpp", not(feature = "llamacpp-vulkan")))]
#[test]
fn llamacpp_vulkan_without_the_feature_says_how_to_build_it() {
    let (out, _) = decode_on("llamacpp:vulkan", &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--features llamacpp-vulkan"),
        "{}",
        stderr(&out)
    );
}

/// With `--features llamacpp-vulkan`, `llamacpp:vulkan` offloads every
/// layer to a Vulkan device and is verified against the reference before
/// it is timed. ggml skips CPU-type devices unless they are named, so on a
/// machine whose only device is Mesa's lavapipe the refusal says how to
/// name it, and named it runs there, recorded as a CPU-type device.
#[cfg(feature = "llamacpp-vulkan")]
#[test]
fn llamacpp_vulkan_runs_verified_where_a_vulkan_device_is() {
    let list = capbench()
        .env("GGML_VK_VISIBLE_DEVICES", "0")
        .args(["list", "backends", "--json"])
        .output()
        .unwrap();
    let list: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    // The llamacpp entry lists a device per GPU offload that has one.
    let offload = list.as_array().unwrap().iter().any(|b| {
        b["backend"] == "llamacpp"
            && b["devices"]
                .as_array()
                .is_some_and(|ds| ds.iter().any(|d| d["backend"] == "llamacpp:vulkan"))
    });
    if !offload {
        eprintln!("skipped: no Vulkan device here (scripts/setup-vulkan-sw.sh installs lavapipe)");
        return;
    }
    let (out, cases) = decode_on("llamacpp:vulkan", &[("GGML_VK_VISIBLE_DEVICES", "0")]);
    let c = cases
        .as_array()
        .and_then(|cs| cs.first())
        .unwrap_or_else(|| panic!("no case: {}", stderr(&out)))
        .clone();
    assert_eq!(c["status"], "ok", "{c}");
    assert_eq!(c["verification"]["passed"], true, "{c}");
    assert_eq!(c["device"]["api"], "vulkan", "{c}");
    let name = c["device"]["name"].as_str().unwrap().to_lowercase();
    if name.contains("llvmpipe") {
        assert_eq!(c["device"]["device_type"], "cpu", "{c}");
        let (refused, _) = decode_on("llamacpp:vulkan", &[("GGML_VK_VISIBLE_DEVICES", "")]);
        assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
        assert!(
            stderr(&refused).contains("GGML_VK_VISIBLE_DEVICES=0"),
            "{}",
            stderr(&refused)
        );
    }
}
