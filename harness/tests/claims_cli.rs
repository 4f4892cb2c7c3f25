//! `capbench check` and `capbench merge` on the real binary: ceilings stored
//! in a run, verdicts from measured and projected evidence with exit codes,
//! malformed claim files (exit 2 naming claim and field), and merging runs
//! whose files differ in schema-compatible ways.

mod common;

use std::path::Path;

use common::*;

/// A run with a STREAM and a GEMM case (the ceilings) and tiny decode, one
/// process each.
fn evidence_run(dir: &Path) {
    let suite = dir.with_extension("toml");
    write(
        &suite,
        "name = \"evidence\"\nworkloads = [\"kernel/stream-1M\", \"kernel/gemm-f32-128\", \"decode/dense-tiny/f32\"]\n\
         [sampling]\nmin_samples = 5\nmax_time_s = 0.2\nwarmup_iters = 1\n",
    );
    let mut args = suite_run(&suite, dir);
    args.extend(["--backend".into(), "cpu".into()]);
    run_ok(&args);
}

fn check(args: &[&str]) -> (i32, String, String) {
    let out = capbench().arg("check").args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr(&out),
    )
}

const CLAIMS: &str = r#"
[profile.big]
memory_gib = 16
bandwidth_gb_per_s = 320
peak_tflops = { f32 = 8.1, f16 = 65 }
source = "a spec sheet"

[[claim]]
id = "fast-here"
statement = "tiny decodes at more than 1 token/s here"
workload = "decode/dense-tiny/f32"
backend = "cpu"
expect = ["tokens_per_s >= 1", "kl_divergence <= 0.01"]

[[claim]]
id = "impossible-here"
statement = "tiny decodes at a billion tokens/s here"
workload = "decode/dense-tiny/f32"
expect = ["tokens_per_s >= 1e9"]

[[claim]]
id = "small-on-big"
statement = "the small model decodes at ≥ 1 token/s on the big card"
workload = "decode/dense-small/f32"
profile = "big"
expect = ["tokens_per_s >= 1", "fits = true"]
"#;

#[test]
fn check_gives_measured_and_projected_verdicts_with_evidence() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    evidence_run(&dir);
    let run = read_json(&dir.join("run.json"));
    let ceilings = run["ceilings"].as_array().unwrap();
    assert!(
        ceilings.iter().any(|c| c["kind"] == "stream")
            && ceilings.iter().any(|c| c["kind"] == "gemm"),
        "{ceilings:?}"
    );
    let decode = run["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["workload"]["name"] == "decode/dense-tiny/f32")
        .unwrap();
    assert!(decode["metrics"]["mbu"].as_f64().unwrap() > 0.0);
    assert!(decode["tags"]["roofline_bound"].is_string());

    let claims = tmp.path().join("claims.toml");
    write(&claims, CLAIMS);
    let junit = tmp.path().join("ci/check.xml");
    let (code, out, err) = check(&[
        claims.to_str().unwrap(),
        "--results",
        dir.to_str().unwrap(),
        "--format",
        "json",
        "--junit",
        junit.to_str().unwrap(),
    ]);
    // Not every claim is supported: exit 1.
    assert_eq!(code, 1, "{out}\n{err}");
    // JUnit: one test case per claim; the refuted one fails, as the exit
    // code does.
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert_eq!(xml.matches("<testcase ").count(), 3, "{xml}");
    assert_eq!(xml.matches("<failure ").count(), 1, "{xml}");
    assert!(
        xml.contains("name=\"impossible-here\">\n      <failure type=\"refuted\""),
        "{xml}"
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let verdict = |id: &str| {
        v["claims"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(verdict("fast-here")["verdict"], "supported_measured");
    assert_eq!(verdict("impossible-here")["verdict"], "refuted_measured");
    let small = verdict("small-on-big");
    // Projected throughput; fit predicted from the analytic need (no run
    // under the profile's memory here).
    assert_eq!(small["verdict"], "supported_projected", "{small:#}");
    assert_eq!(small["expectations"][0]["basis"], "projected");
    assert_eq!(small["projections"][0]["label"], "projected");
    assert!(
        small["expectations"][1]["evidence"]
            .as_str()
            .unwrap()
            .contains("predicted need")
    );

    // Text output: the verdict line and the evidence table.
    let (_, text, _) = check(&[claims.to_str().unwrap(), "--results", dir.to_str().unwrap()]);
    assert!(text.contains("fast-here — supported (measured)"), "{text}");
    assert!(text.contains("projected [band]"), "{text}");

    // Only supported claims: exit 0.
    let only = tmp.path().join("only.toml");
    write(
        &only,
        &CLAIMS[..CLAIMS.find("[[claim]]\nid = \"impossible-here\"").unwrap()],
    );
    let (code, out, err) = check(&[only.to_str().unwrap(), "--results", dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}\n{err}");
}

#[test]
fn check_run_measures_only_what_the_results_lack() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    // Holds this machine's ceilings and tiny f32 decode, not q8_0.
    evidence_run(&dir);
    let claims = tmp.path().join("claims.toml");
    write(
        &claims,
        "[[claim]]\nid = \"q8-here\"\nstatement = \"tiny q8_0 decodes at ≥ 1 token/s here\"\n\
         workload = \"decode/dense-tiny/q8_0\"\nbackend = \"cpu\"\nexpect = [\"tokens_per_s >= 1\"]\n\n\
         [[claim]]\nid = \"f32-here\"\nstatement = \"tiny f32 decodes at ≥ 1 token/s here\"\n\
         workload = \"decode/dense-tiny/f32\"\nbackend = \"cpu\"\nexpect = [\"tokens_per_s >= 1\"]\n",
    );
    let new = tmp.path().join("new");
    let (code, out, err) = check(&[
        claims.to_str().unwrap(),
        "--results",
        dir.to_str().unwrap(),
        "--run",
        "--backend",
        "cpu",
        "--out",
        new.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    // Only the missing workload ran: the ceilings came with the results.
    assert!(
        err.contains("running what the claims need: decode/dense-tiny/q8_0\n"),
        "{err}"
    );
    let run = read_json(&new.join("run.json"));
    let names: Vec<&str> = run["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["workload"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["decode/dense-tiny/q8_0"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    for c in v["claims"].as_array().unwrap() {
        assert_eq!(c["verdict"], "supported_measured", "{c:#}");
    }
    // With both folders nothing is missing: nothing runs, same verdicts.
    let (code, out, err) = check(&[
        claims.to_str().unwrap(),
        "--results",
        dir.to_str().unwrap(),
        new.to_str().unwrap(),
        "--run",
        "--backend",
        "cpu",
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(err.contains("nothing to run"), "{err}");
    assert!(out.contains("q8-here — supported (measured)"), "{out}");
}

#[test]
fn malformed_claim_files_name_the_claim_and_the_field() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    run_ok(&small_cpu_run(&dir));
    let claims = tmp.path().join("bad.toml");
    let cases = [
        (
            CLAIMS.replace("\"tokens_per_s >= 1e9\"", "\"tokens_per_s >== 1e9\""),
            "claim 'impossible-here', field expect[0]",
        ),
        (
            CLAIMS.replace("decode/dense-small/f32", "decode/dense-giant/f32"),
            "claim 'small-on-big', field workload",
        ),
        (
            CLAIMS.replace("profile = \"big\"", "profile = \"h9000\""),
            "unknown profile 'h9000'",
        ),
        (
            CLAIMS.replace("backend = \"cpu\"", "backend = \"tpu\""),
            "claim 'fast-here', field backend",
        ),
        (
            CLAIMS.replace(
                "statement = \"tiny decodes at more",
                "statment = \"tiny decodes at more",
            ),
            "claim 'fast-here' (line",
        ),
        (
            CLAIMS[..CLAIMS.len() / 3].to_string() + "\n[[claim\n",
            "line ",
        ),
    ];
    for (text, expect) in cases {
        write(&claims, &text);
        let (code, out, err) =
            check(&[claims.to_str().unwrap(), "--results", dir.to_str().unwrap()]);
        assert_eq!(code, 2, "{expect}: {out}\n{err}");
        assert!(
            err.contains(expect) && err.contains("fix:"),
            "{expect}: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
    // A missing claims file, and no evidence at all.
    let (code, _, err) = check(&[
        "/nonexistent/claims.toml",
        "--results",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    write(&claims, CLAIMS);
    let (code, _, err) = check(&[claims.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--results"), "{err}");
}

#[test]
fn merge_keeps_machines_apart_and_accepts_schema_compatible_differences() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    evidence_run(&a);
    // The "other machine": another fingerprint, an older writer (no
    // ceilings, no energy, no tags — optional fields), a newer one's extra
    // field, and another capbench version.
    let mut v = read_json(&a.join("run.json"));
    v["env"]["machine_id"] = "0ther0machine".into();
    v["env"]["hostname"] = "elsewhere".into();
    v["env"]["capbench_version"] = "0.0.9".into();
    v["run_id"] = "older-run".into();
    v.as_object_mut().unwrap().remove("ceilings");
    v["future_field"] = serde_json::json!({"kept": true});
    for c in v["cases"].as_array_mut().unwrap() {
        let c = c.as_object_mut().unwrap();
        c.remove("energy");
        c.remove("tags");
        c["metrics"].as_object_mut().unwrap().remove("mbu");
    }
    let b = tmp.path().join("b");
    std::fs::create_dir_all(&b).unwrap();
    write(
        &b.join("run.json"),
        &serde_json::to_string_pretty(&v).unwrap(),
    );

    let merged = tmp.path().join("merged");
    let out = run_ok(&[
        "merge",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--out",
        merged.to_str().unwrap(),
    ]);
    let err = stderr(&out);
    assert!(err.contains("merged 2 run(s) of 2 machine(s)"), "{err}");
    let idx = read_json(&merged.join("merged.json"));
    assert_eq!(idx["machines"].as_array().unwrap().len(), 2);
    assert!(
        idx["differences"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d.as_str().unwrap().starts_with("env.capbench_version")),
        "{idx:#}"
    );
    // Byte for byte: the newer writer's field survives.
    let copied = read_json(&merged.join("runs/0ther0machine/older-run/run.json"));
    assert_eq!(copied["future_field"]["kept"], true);

    // show, report and check read the merged folder.
    let shown = run_ok(&["show", merged.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&shown.stdout).contains("0ther0machine"));
    let rep = tmp.path().join("rep");
    run_ok(&[
        "report",
        merged.to_str().unwrap(),
        "--out",
        rep.to_str().unwrap(),
        "--format",
        "csv",
    ]);
    let csv = std::fs::read_to_string(rep.join("cases.csv")).unwrap();
    assert!(
        csv.contains("0ther0machine") && csv.contains("older-run"),
        "{csv}"
    );
    let claims = tmp.path().join("claims.toml");
    write(&claims, CLAIMS);
    let (_, out, err) = check(&[
        claims.to_str().unwrap(),
        "--results",
        merged.to_str().unwrap(),
        "--format",
        "json",
    ]);
    let v: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
    // Two machines measured it and the claim names none: cannot tell.
    let here = &v["claims"][0];
    assert_eq!(here["verdict"], "cannot_tell", "{here:#}");
    assert!(
        here["expectations"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("2 machines")
    );
    // Merging into a folder that holds a merge is refused.
    let again = capbench()
        .args([
            "merge",
            a.to_str().unwrap(),
            "--out",
            merged.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(2));
}
