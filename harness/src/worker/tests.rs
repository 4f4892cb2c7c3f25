//! The worker on real workloads: sample bounds, a wrong answer not timed,
//! version checks, and verification skipped only for the verified weights.

use super::*;

fn job(workload: &str) -> WorkerJob {
    WorkerJob {
        case_id: "t".into(),
        workload: workload.into(),
        workload_version: WorkloadSpec::parse(workload)
            .map(|s| s.version)
            .unwrap_or(1),
        backend: "cpu".into(),
        sampling: Sampling {
            repeat: 1,
            warmup_iters: 1,
            min_samples: 5,
            max_samples: 40,
            max_time_s: 0.2,
            target_ci_rel: 0.5,
        },
        process_index: 0,
        parent_pid: 0,
        inject_slowdown: None,
        corpus: None,
        model: None,
        caps: Default::default(),
        protocol_version: 1,
        tolerance: None,
        tolerance_on: None,
        inputs: Default::default(),
        model_cache: None,
        verified_weights: None,
    }
}

#[test]
fn measures_a_gemm_within_the_sample_bounds() {
    let out = measure(&job("kernel/gemm-f32-32"));
    assert_eq!(out.status, Status::Ok, "{}", out.status_detail);
    assert!(out.verification.as_ref().unwrap().passed);
    let n = out.samples_wall_s.len();
    assert!((5..=40).contains(&n), "{n}");
    assert!(out.samples_wall_s.iter().all(|s| *s > 0.0));
    assert!(["ci_target", "time_budget", "max_samples"].contains(&out.stop_reason.as_str()));
    assert_eq!(out.within_wall_s.unwrap().n, n);
    // This machine may or may not have RAPL; some source must cover it.
    let e = out.energy.unwrap();
    let m = e.measurement.expect("an energy figure");
    assert!(m.energy_j > 0.0 && m.iters == n, "{m:?}");
    assert!(e.sources_tried.iter().any(|s| s.name == "rapl"));
}

#[test]
fn wrong_answer_is_not_timed() {
    let out = measure(&job("fault/wrong"));
    assert_eq!(out.status, Status::FailedVerification);
    assert!(out.samples_wall_s.is_empty());
    assert!(out.status_detail.contains("differs from the reference"));
}

/// A process whose weights hash equals the verified one skips
/// verification and is timed; other weights are an error, not timed.
#[test]
fn verified_weights_skip_verification_only_when_the_hash_matches() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = job("decode/dense-tiny/q4_0/p8g4");
    j.model_cache = Some(dir.path().to_path_buf());
    let first = measure(&j);
    assert_eq!(first.status, Status::Ok, "{}", first.status_detail);
    assert!(first.verification.as_ref().unwrap().passed);
    let sha = first.weights.unwrap().sha256.unwrap();
    j.verified_weights = Some(VerifiedWeights {
        process: 0,
        sha256: sha.clone(),
    });
    let second = measure(&j);
    assert_eq!(second.status, Status::Ok, "{}", second.status_detail);
    assert_eq!(second.verified_by_process, Some(0));
    assert!(second.verification.is_none() && !second.samples_wall_s.is_empty());
    assert_eq!(second.weights.unwrap().cache, "hit");
    j.verified_weights = Some(VerifiedWeights {
        process: 0,
        sha256: "0".repeat(64),
    });
    let third = measure(&j);
    assert_eq!(third.status, Status::Error);
    assert!(
        third.status_detail.contains(&sha),
        "{}",
        third.status_detail
    );
    assert!(third.samples_wall_s.is_empty());
}

#[test]
fn version_mismatch_is_an_error() {
    let mut j = job("kernel/gemm-f32-8");
    j.workload_version = 99;
    assert_eq!(measure(&j).status, Status::Error);
}
