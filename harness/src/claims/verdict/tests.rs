//! Every verdict kind of `claims::verdict`, on synthetic runs built by the
//! real aggregation code.

use std::path::Path;

use capbench_workloads::WorkloadSpec;

use super::{Basis, CheckOptions, ClaimVerdictKind, check};
use crate::analysis::ceilings;
use crate::analysis::fixtures::{case, jittered, process, run};
use crate::claims;
use crate::results::merge::SourcedRun;
use crate::results::{CapsRecord, CaseResult, PlannedCase, RunFile, Status, WorkPerIterRecord};

/// A model case whose worker reported the analytic work (so its headline is
/// tokens/s), every process at `wall_s` ±1 %.
fn model_case(workload: &str, wall_s: f64) -> CaseResult {
    let spec = WorkloadSpec::parse(workload).unwrap();
    let work = capbench_workloads::cost::work::of(&spec);
    let processes = jittered(wall_s, 3, 1)
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            let mut p = process(i, Status::Ok, s);
            p.worker.as_mut().unwrap().work_per_iter = Some(WorkPerIterRecord::from(work));
            p
        })
        .collect();
    crate::analysis::aggregate::case_result(
        &PlannedCase {
            id: format!("{workload}@cpu"),
            workload: workload.into(),
            backend: "cpu".into(),
            caps: CapsRecord::default(),
            sampling: None,
        },
        &spec,
        processes,
        "2026-01-01T00:00:00Z".into(),
        1.0,
    )
}

fn bytes_of(workload: &str) -> f64 {
    capbench_workloads::cost::work::of(&WorkloadSpec::parse(workload).unwrap()).bytes
}

/// A run on machine `m` with a 10 GB/s STREAM and 100 GFLOP/s GEMM
/// ceiling, and tiny decode at 5 GB/s (MBU 0.5).
fn machine_run(m: &str, with_ceilings: bool) -> SourcedRun {
    machine_run_of(m, with_ceilings, "decode/dense-tiny/f32")
}

/// `machine_run` with `workload` as its model case (at MBU 0.5).
fn machine_run_of(m: &str, with_ceilings: bool, workload: &str) -> SourcedRun {
    let mut cases = vec![model_case(workload, bytes_of(workload) / 5e9)];
    if with_ceilings {
        cases.push(case(
            "kernel/stream-1000",
            "cpu",
            jittered(12_000.0 / 10e9, 3, 2),
        ));
        cases.push(case(
            "kernel/gemm-f32-256",
            "cpu",
            jittered(2.0 * 256f64.powi(3) / 100e9, 3, 3),
        ));
    }
    let mut r: RunFile = run(m, cases);
    r.ceilings = ceilings::from_cases(&r.cases, &r.run_id);
    ceilings::apply(&mut r.cases, &r.ceilings.clone());
    SourcedRun {
        source: format!("runs/{m}"),
        run: r,
    }
}

fn tiny_tokens_per_s(runs: &[SourcedRun]) -> f64 {
    runs[0].run.cases[0].headline.as_ref().unwrap().value
}

const PROFILES: &str = r#"
[profile.fast]
memory_gib = 8
bandwidth_gb_per_s = 100
source = "test sheet"

[profile.fast-twin]
memory_gib = 80
bandwidth_gb_per_s = 100
source = "test sheet"
"#;

fn claim(workload: &str, extra: &str, expect: &[String]) -> String {
    let list = expect
        .iter()
        .map(|e| format!("\"{e}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "[[claim]]\nid = \"c\"\nstatement = \"s\"\nworkload = \"{workload}\"\n{extra}\nexpect = [{list}]\n"
    )
}

fn verdict(toml: &str, runs: &[SourcedRun]) -> super::ClaimVerdict {
    let set = claims::parse(&format!("{PROFILES}\n{toml}"), Path::new("c.toml")).unwrap();
    let r = check(
        &set,
        runs,
        &CheckOptions {
            projection_uncertainty_rel: 0.2,
        },
    );
    r.claims.into_iter().next().unwrap()
}

#[test]
fn measured_verdicts_use_the_whole_ci() {
    let runs = vec![machine_run("m1", true)];
    let tps = tiny_tokens_per_s(&runs);
    let v = verdict(
        &claim(
            "decode/dense-tiny/f32",
            "",
            &[format!("tokens_per_s >= {}", tps * 0.5)],
        ),
        &runs,
    );
    assert_eq!(v.verdict, ClaimVerdictKind::SupportedMeasured, "{v:#?}");
    assert_eq!(v.expectations[0].basis, Some(Basis::Measured));
    let v = verdict(
        &claim(
            "decode/dense-tiny/f32",
            "",
            &[format!("tokens_per_s >= {}", tps * 2.0)],
        ),
        &runs,
    );
    assert_eq!(v.verdict, ClaimVerdictKind::RefutedMeasured);
    // The bound inside the CI: cannot tell, and it says why.
    let v = verdict(
        &claim(
            "decode/dense-tiny/f32",
            "",
            &[format!("tokens_per_s >= {tps}")],
        ),
        &runs,
    );
    assert_eq!(v.verdict, ClaimVerdictKind::CannotTell);
    assert!(
        v.expectations[0]
            .reason
            .as_ref()
            .unwrap()
            .contains("straddles")
    );
}

#[test]
fn projected_verdicts_carry_efficiency_and_band() {
    let runs = vec![machine_run("m1", true)];
    // MBU 0.5 × 100 GB/s over the tiny model's bytes per token.
    let spec = WorkloadSpec::parse("decode/dense-tiny/f32").unwrap();
    let w = capbench_workloads::cost::work::of(&spec);
    let expected = w.headline_per_iter / (w.bytes / (0.5 * 100e9));
    let v = verdict(
        &claim(
            "decode/dense-tiny/f32",
            "profile = \"fast\"",
            &[format!("tokens_per_s >= {}", expected * 0.7)],
        ),
        &runs,
    );
    assert_eq!(v.verdict, ClaimVerdictKind::SupportedProjected, "{v:#?}");
    let e = &v.expectations[0];
    assert!(
        (e.value.unwrap() / expected - 1.0).abs() < 0.02,
        "{e:?} vs {expected}"
    );
    assert_eq!(v.projections[0].label, "projected");
    assert_eq!(v.projections[0].efficiency_kind, "mbu");
    assert!((v.projections[0].efficiency_assumed - 0.5).abs() < 0.01);
    assert!(v.assumptions[0].contains("MBU = 0."), "{:?}", v.assumptions);
    let v = verdict(
        &claim(
            "decode/dense-tiny/f32",
            "profile = \"fast\"",
            &[format!("tokens_per_s >= {}", expected * 1.5)],
        ),
        &runs,
    );
    assert_eq!(v.verdict, ClaimVerdictKind::RefutedProjected);
    // Within the ±20 % projection uncertainty: cannot tell.
    let v = verdict(
        &claim(
            "decode/dense-tiny/f32",
            "profile = \"fast\"",
            &[format!("tokens_per_s >= {}", expected * 1.1)],
        ),
        &runs,
    );
    assert_eq!(v.verdict, ClaimVerdictKind::CannotTell);
}

#[test]
fn another_size_of_the_family_lends_its_efficiency() {
    let runs = vec![machine_run("m1", true)];
    let v = verdict(
        &claim(
            "decode/dense-small/f32",
            "profile = \"fast\"",
            &["tokens_per_s >= 0.001".into()],
        ),
        &runs,
    );
    assert_eq!(v.verdict, ClaimVerdictKind::SupportedProjected, "{v:#?}");
    assert!(
        v.assumptions[0].contains("was not measured"),
        "{:?}",
        v.assumptions
    );
    // Without a profile: projected onto the measuring machine's ceilings.
    let v = verdict(
        &claim(
            "decode/dense-small/f32",
            "",
            &["tokens_per_s >= 0.001".into()],
        ),
        &runs,
    );
    assert_eq!(v.verdict, ClaimVerdictKind::SupportedProjected, "{v:#?}");
    // A different format is not the same workload family.
    let v = verdict(
        &claim(
            "decode/dense-small/q8_0",
            "profile = \"fast\"",
            &["tokens_per_s >= 0.001".into()],
        ),
        &runs,
    );
    assert_eq!(v.verdict, ClaimVerdictKind::CannotTell);
}

#[test]
fn cannot_tell_says_why() {
    // No ceilings on the machine: no efficiency to project with.
    let runs = vec![machine_run("m1", false)];
    let v = verdict(
        &claim(
            "decode/dense-tiny/f32",
            "profile = \"fast\"",
            &["tokens_per_s >= 1".into()],
        ),
        &runs,
    );
    assert_eq!(v.verdict, ClaimVerdictKind::CannotTell);
    assert!(
        v.expectations[0]
            .reason
            .as_ref()
            .unwrap()
            .contains("capbench probe"),
        "{v:#?}"
    );
    // Nothing measured.
    let v = verdict(
        &claim("decode/openelm-tiny/f32", "", &["tokens_per_s >= 1".into()]),
        &runs,
    );
    assert!(
        v.expectations[0]
            .reason
            .as_ref()
            .unwrap()
            .contains("no result of"),
        "{v:#?}"
    );
    // Memory fit without a run under that memory: predicted from the
    // analytic need (tiny needs far less than 8 GiB), labelled projected.
    let v = verdict(
        &claim(
            "decode/dense-tiny/f32",
            "profile = \"fast\"",
            &["fits = true".into()],
        ),
        &runs,
    );
    assert_eq!(v.verdict, ClaimVerdictKind::SupportedProjected, "{v:#?}");
    assert!(
        v.expectations[0].evidence.contains("predicted need"),
        "{v:#?}"
    );
    let v = verdict(
        &claim(
            "decode/llama-2-7b/f32",
            "mem_cap = \"1GiB\"",
            &["fits = true".into()],
        ),
        &runs,
    );
    assert_eq!(v.verdict, ClaimVerdictKind::RefutedProjected, "{v:#?}");
    // Two machines, no profile, no machine named.
    let runs = vec![machine_run("m1", true), machine_run("m2", true)];
    let v = verdict(
        &claim("decode/dense-tiny/f32", "", &["tokens_per_s >= 1".into()]),
        &runs,
    );
    assert!(
        v.expectations[0]
            .reason
            .as_ref()
            .unwrap()
            .contains("2 machines"),
        "{v:#?}"
    );
    let v = verdict(
        &claim(
            "decode/dense-tiny/f32",
            "machine = \"m2\"",
            &["tokens_per_s >= 1".into()],
        ),
        &runs,
    );
    assert_eq!(v.verdict, ClaimVerdictKind::SupportedMeasured, "{v:#?}");
    assert!(v.expectations[0].evidence.contains("machine m2"));
}

#[test]
fn quality_is_measured_anywhere_and_ratios_are_projected() {
    let mut runs = vec![machine_run("m1", true)];
    runs[0].run.cases[0].verification = Some(capbench_workloads::Verification {
        passed: true,
        reference: "f32".into(),
        elements_checked: 1,
        max_abs_diff: 0.0,
        max_rel_diff: 0.0,
        scaled_max_diff: 0.0,
        tolerance: 0.1,
        nan_or_inf: 0,
        mean_kl: Some(0.004),
        top1_agreement: Some(1.0),
        note: String::new(),
    });
    let v = verdict(
        &claim(
            "decode/dense-tiny/f32",
            "profile = \"fast\"",
            &["kl_divergence <= 0.01".into()],
        ),
        &runs,
    );
    assert_eq!(v.verdict, ClaimVerdictKind::SupportedMeasured, "{v:#?}");
    let v = verdict(
        &claim(
            "decode/dense-tiny/f32",
            "",
            &["kl_divergence <= 0.001".into()],
        ),
        &runs,
    );
    assert_eq!(v.verdict, ClaimVerdictKind::RefutedMeasured);
    // Same bandwidth on both profiles: the ratio is 1.
    let v = verdict(
        &claim(
            "decode/dense-tiny/f32",
            "profile = \"fast\"\nversus = \"fast-twin\"",
            &["tokens_per_s_ratio >= 0.5".into()],
        ),
        &runs,
    );
    assert_eq!(v.verdict, ClaimVerdictKind::SupportedProjected, "{v:#?}");
    assert!((v.expectations[0].value.unwrap() - 1.0).abs() < 1e-12);
}

#[test]
fn a_run_under_the_memory_measures_the_fit() {
    let mut runs = vec![machine_run("m1", true)];
    let mut capped = runs[0].run.cases[0].clone();
    capped.caps.mem_cap_bytes = Some(1 << 20);
    capped.status = Status::Oom;
    capped.tags.insert(
        "fit_measured".into(),
        crate::analysis::memory::DOES_NOT_FIT.into(),
    );
    runs[0].run.cases.push(capped);
    let v = verdict(
        &claim(
            "decode/dense-tiny/f32",
            "mem_cap = \"1MiB\"",
            &["fits = true".into()],
        ),
        &runs,
    );
    assert_eq!(v.verdict, ClaimVerdictKind::RefutedMeasured, "{v:#?}");
    assert!(
        v.expectations[0].evidence.contains("does not fit (oom)"),
        "{v:#?}"
    );
    let v = verdict(
        &claim(
            "decode/dense-tiny/f32",
            "mem_cap = \"1MiB\"",
            &["fits = false".into()],
        ),
        &runs,
    );
    assert_eq!(v.verdict, ClaimVerdictKind::SupportedMeasured);
}

/// tokens/s of `workload` on the `fast` profile (100 GB/s) at MBU `mbu`.
fn on_fast(workload: &str, mbu: f64) -> f64 {
    let w = capbench_workloads::cost::work::of(&WorkloadSpec::parse(workload).unwrap());
    w.headline_per_iter / (w.bytes / (mbu * 100e9))
}

#[test]
fn a_smaller_size_bounds_the_efficiency_from_below_only() {
    // Tiny at MBU 0.5 stands in for small: the projection at 0.5 is the
    // slow end; the roof at 100 % (twice as fast) is the fast end.
    let runs = vec![machine_run("m1", true)];
    let point = on_fast("decode/dense-small/f32", 0.5);
    let judge = |factor: f64| {
        verdict(
            &claim(
                "decode/dense-small/f32",
                "profile = \"fast\"",
                &[format!("tokens_per_s >= {}", point * factor)],
            ),
            &runs,
        )
    };
    let v = judge(0.5);
    assert_eq!(v.verdict, ClaimVerdictKind::SupportedProjected, "{v:#?}");
    assert!(
        v.assumptions[0].contains("as a lower bound"),
        "{:?}",
        v.assumptions
    );
    // Above the source's efficiency but below the roof: a bigger model may
    // well get there (it did on the measuring VM), so no refutation.
    let v = judge(1.5);
    assert_eq!(v.verdict, ClaimVerdictKind::CannotTell, "{v:#?}");
    let e = &v.expectations[0];
    assert!(
        (e.band_high.unwrap() / (2.0 * point) - 1.0).abs() < 1e-6,
        "{e:?}"
    );
    // Beyond the roof at 100 %: refuted whatever the efficiency.
    let v = judge(2.5);
    assert_eq!(v.verdict, ClaimVerdictKind::RefutedProjected, "{v:#?}");
}

#[test]
fn a_larger_size_bounds_only_from_above() {
    let runs = vec![machine_run_of("m1", true, "decode/dense-small/f32")];
    let roof = on_fast("decode/dense-tiny/f32", 1.0);
    let judge = |expect: String| {
        verdict(
            &claim("decode/dense-tiny/f32", "profile = \"fast\"", &[expect]),
            &runs,
        )
    };
    // However slow: the tiny model's efficiency may be far below small's.
    let v = judge("tokens_per_s >= 0.001".into());
    assert_eq!(v.verdict, ClaimVerdictKind::CannotTell, "{v:#?}");
    assert_eq!(v.expectations[0].band_low, Some(0.0));
    let v = judge(format!("tokens_per_s <= {}", roof * 1.01));
    assert_eq!(v.verdict, ClaimVerdictKind::SupportedProjected, "{v:#?}");
    let v = judge(format!("tokens_per_s >= {}", roof * 1.5));
    assert_eq!(v.verdict, ClaimVerdictKind::RefutedProjected, "{v:#?}");
    // The nearest smaller size is preferred over a larger one.
    let mut both = machine_run_of("m1", true, "decode/llama-3.2-1b/f32");
    let tiny = machine_run("m1", true).run.cases[0].clone();
    both.run.cases.push(tiny);
    let v = verdict(
        &claim(
            "decode/dense-small/f32",
            "profile = \"fast\"",
            &["tokens_per_s >= 0.001".into()],
        ),
        &[both],
    );
    assert_eq!(v.verdict, ClaimVerdictKind::SupportedProjected, "{v:#?}");
    assert!(
        v.assumptions[0].contains("decode/dense-tiny/f32")
            && v.assumptions[0].contains("lower bound"),
        "{:?}",
        v.assumptions
    );
}

#[test]
fn a_claim_about_an_engine_counts_only_that_engines_cases() {
    let runs = vec![machine_run("m1", true)];
    let expect = ["tokens_per_s >= 1".to_string()];
    // No engine named: capbench's own, and the projection says so.
    let v = verdict(
        &claim("decode/dense-tiny/f32", "profile = \"fast\"", &expect),
        &runs,
    );
    assert_eq!(v.verdict, ClaimVerdictKind::SupportedProjected, "{v:#?}");
    assert!(
        v.projections[0]
            .assumption
            .contains("capbench's own engine"),
        "{}",
        v.projections[0].assumption
    );
    // llama.cpp's efficiency was not measured: nothing to project from.
    let v = verdict(
        &claim(
            "decode/dense-tiny/f32",
            "profile = \"fast\"\nengine = \"llamacpp\"",
            &expect,
        ),
        &runs,
    );
    assert_eq!(v.verdict, ClaimVerdictKind::CannotTell, "{v:#?}");
    // A case tagged with that engine is its evidence, and named.
    let mut tagged = machine_run("m1", true);
    tagged.run.cases[0]
        .tags
        .insert("engine".into(), "llamacpp".into());
    let v = verdict(
        &claim(
            "decode/dense-tiny/f32",
            "profile = \"fast\"\nengine = \"llamacpp\"",
            &expect,
        ),
        &[tagged],
    );
    assert_eq!(v.verdict, ClaimVerdictKind::SupportedProjected, "{v:#?}");
    assert!(v.projections[0].assumption.contains("llamacpp engine"));
    // An engine capbench does not know is a bad claims file.
    let bad = claim("decode/dense-tiny/f32", "engine = \"vllm\"", &expect);
    let e = claims::parse(&format!("{PROFILES}\n{bad}"), Path::new("c.toml")).unwrap_err();
    assert!(e.to_string().contains("unknown engine 'vllm'"), "{e}");
}

#[test]
fn a_source_above_its_roof_is_refused_and_the_reason_given() {
    let mut runs = vec![machine_run("m1", true)];
    runs[0].run.cases[0].metrics.insert("mbu".into(), 1.3);
    let v = verdict(
        &claim(
            "decode/dense-tiny/f32",
            "profile = \"fast\"",
            &["tokens_per_s >= 1".to_string()],
        ),
        &runs,
    );
    assert_eq!(v.verdict, ClaimVerdictKind::CannotTell, "{v:#?}");
    let why = v.expectations[0].reason.as_deref().unwrap_or_default();
    assert!(why.contains("MBU 1.300 > 1"), "{why}");
}

#[test]
fn a_nearer_size_above_its_roof_is_named_when_another_is_used() {
    let mut near = machine_run_of("m1", true, "decode/dense-small/f32");
    near.run.cases[0].metrics.insert("mbu".into(), 1.3);
    let runs = vec![machine_run("m1", true), near];
    let v = verdict(
        &claim(
            "decode/llama-3.2-1b/f32",
            "profile = \"fast\"",
            &["tokens_per_s >= 0.001".into()],
        ),
        &runs,
    );
    assert_eq!(v.verdict, ClaimVerdictKind::SupportedProjected, "{v:#?}");
    let note = v
        .assumptions
        .iter()
        .find(|a| a.contains("was not measured"))
        .expect("the source's note");
    assert!(note.contains("decode/dense-tiny/f32"), "{note}");
    assert!(
        note.contains("not used: decode/dense-small/f32") && note.contains("MBU 1.300 > 1"),
        "{note}"
    );
}
