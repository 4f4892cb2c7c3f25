//! `capbench export-gguf` and `capbench run --model FILE.gguf` on the real
//! binary: the exported file decodes with the usual metrics and is recorded
//! in the run; damaged files are rejected at planning time with exit 2.

mod common;

use common::*;

fn exit_2(args: &[&str]) -> String {
    let out = capbench().args(args).output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "capbench {args:?}: {err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

#[test]
fn exported_gguf_decodes_and_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tiny.gguf");
    let f = file.to_str().unwrap();
    run_ok(&[
        "export-gguf",
        "--model",
        "dense-tiny",
        "--format",
        "q4_0",
        "--out",
        f,
    ]);
    // Never overwrites.
    let err = exit_2(&["export-gguf", "--model", "dense-tiny", "--out", f]);
    assert!(err.contains("exists"), "{err}");
    let out = dir.path().join("run");
    run_ok(&[
        "run",
        "--model",
        f,
        "--workload",
        "decode/gguf/*",
        "--backend",
        "cpu",
        "--repeat",
        "1",
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    let run = read_json(&out.join("run.json"));
    let m = &run["options"]["model"];
    assert_eq!(m["format"], "q4_0");
    assert_eq!(m["layers"], 2);
    assert_eq!(
        m["bytes"].as_u64().unwrap(),
        std::fs::metadata(&file).unwrap().len()
    );
    assert_eq!(m["fnv1a"].as_str().unwrap().len(), 16);
    let cases = run["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 1, "{cases:?}");
    let c = &cases[0];
    assert_eq!(c["workload"]["name"], "decode/gguf/q4_0");
    assert_eq!(c["status"], "ok", "{c}");
    let text = c.to_string();
    for key in ["tokens_per_s", "ttft_s", "bytes_per_iter"] {
        assert!(text.contains(key), "{key} missing: {text}");
    }
    assert!(text.contains("dequantized to f32"), "{text}");
}

#[test]
fn damaged_or_foreign_model_files_exit_2_before_running() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.gguf");
    run_ok(&[
        "export-gguf",
        "--model",
        "dense-tiny",
        "--format",
        "f32",
        "--out",
        good.to_str().unwrap(),
    ]);
    let bytes = std::fs::read(&good).unwrap();
    let bad = dir.path().join("bad.gguf");
    let b = bad.to_str().unwrap();
    let run = |err_has: &[&str]| {
        let out = dir.path().join("never");
        let err = exit_2(&[
            "run",
            "--model",
            b,
            "--backend",
            "cpu",
            "--out",
            out.to_str().unwrap(),
        ]);
        for s in err_has {
            assert!(err.contains(s), "wanted {s:?} in: {err}");
        }
        assert!(err.contains("fix:"), "{err}");
        assert!(!out.join("plan.json").exists());
    };
    std::fs::write(&bad, &bytes[..bytes.len() / 2]).unwrap();
    run(&["bad.gguf", "tensor ", "truncated"]);
    std::fs::write(&bad, b"PK\x03\x04 not a model").unwrap();
    run(&["bad.gguf", "bytes 0..4", "not a GGUF file"]);
    // A decode/gguf workload without --model is a usage error.
    let suite = dir.path().join("s.toml");
    write(&suite, "name = \"s\"\nworkloads = [\"decode/gguf/q4_0\"]\n");
    let err = exit_2(&[
        "run",
        "--suite",
        suite.to_str().unwrap(),
        "--backend",
        "cpu",
    ]);
    assert!(err.contains("--model FILE.gguf"), "{err}");
    // Unknown shapes and formats for export.
    exit_2(&["export-gguf", "--model", "nope", "--out", b]);
    exit_2(&[
        "export-gguf",
        "--model",
        "dense-tiny",
        "--format",
        "q3",
        "--out",
        b,
    ]);
    let err = exit_2(&[
        "export-gguf",
        "--model",
        "moe-mla-tiny",
        "--out",
        dir.path().join("m.gguf").to_str().unwrap(),
    ]);
    assert!(err.contains("dense family"), "{err}");
}
