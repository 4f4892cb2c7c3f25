//! `capbench compare`: match the cases of two runs, estimate the NEW/BASE
//! ratio of each headline metric with a between-process confidence interval,
//! and give a verdict against a threshold that adapts to measured A/A noise.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::calibration::Calibration;
use crate::results::{CaseResult, RunFile, Status};
use crate::stats;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Worse by more than the threshold, with 95% confidence.
    Regressed,
    /// The CI straddles a threshold: more data needed.
    Inconclusive,
    /// Cannot be compared (missing, failed, other version/backend/machine).
    Incomparable,
    /// Better by more than the threshold, with 95% confidence.
    Improved,
    /// Within ±threshold, with 95% confidence.
    Unchanged,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Regressed => "regressed",
            Verdict::Inconclusive => "inconclusive",
            Verdict::Incomparable => "incomparable",
            Verdict::Improved => "improved",
            Verdict::Unchanged => "unchanged",
        }
    }
}

#[derive(Debug, Clone)]
pub struct CompareOptions {
    /// Relative change that counts, e.g. 0.05 for 5%.
    pub threshold: f64,
    /// Compare even when the machine fingerprints differ (marked in output).
    pub allow_machine_mismatch: bool,
    pub calibration: Option<Calibration>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseComparison {
    pub key: String,
    pub metric: String,
    pub higher_is_better: bool,
    pub base_value: Option<f64>,
    pub new_value: Option<f64>,
    /// NEW / BASE of the headline metric.
    pub ratio: Option<f64>,
    pub ratio_ci95_low: Option<f64>,
    pub ratio_ci95_high: Option<f64>,
    /// `between_process` (hierarchical bootstrap over worker processes) or
    /// `within_process` (a side had one process: CI understates the spread).
    pub ci_basis: String,
    pub base_processes: usize,
    pub new_processes: usize,
    /// The threshold applied: max(--threshold, calibrated A/A noise).
    pub threshold: f64,
    /// A/A noise of this case from the calibration, when there is one.
    pub noise_rel: Option<f64>,
    pub verdict: Verdict,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRef {
    pub run_id: String,
    pub machine_id: String,
    pub git_commit: String,
    pub build_profile: String,
}

impl RunRef {
    fn of(r: &RunFile) -> RunRef {
        RunRef {
            run_id: r.run_id.clone(),
            machine_id: r.env.machine_id.clone(),
            git_commit: r.env.git_commit.clone(),
            build_profile: r.env.build_profile.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub schema_version: u32,
    pub base: RunRef,
    pub new: RunRef,
    pub threshold: f64,
    /// Why the runs as a whole are not comparable (machine, build), if so.
    pub environment_mismatch: Vec<String>,
    pub calibrated: bool,
    pub counts: BTreeMap<String, usize>,
    /// One line for the top of a CI summary.
    pub headline: String,
    /// Sorted by severity: regressed, inconclusive, incomparable, improved, unchanged.
    pub cases: Vec<CaseComparison>,
}

impl Comparison {
    pub fn any_regressed(&self) -> bool {
        self.cases.iter().any(|c| c.verdict == Verdict::Regressed)
    }
}

/// Bootstrap resamples for ratio CIs (seeded: re-analysis is reproducible).
const RESAMPLES: usize = 2000;
const SEED: u64 = 0xC0_4EA5E;

fn groups(c: &CaseResult) -> Vec<Vec<f64>> {
    c.processes
        .iter()
        .filter(|p| p.status == Status::Ok)
        .filter_map(|p| p.worker.as_ref())
        .map(|w| w.samples_wall_s.clone())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Verdict for a "goodness" ratio g (> 1 is better) with CI [lo, hi]. The
/// bounds are multiplicative — worse than 1/(1+t), better than 1+t — so a
/// large calibrated noise still gives meaningful bounds (t = 100% means
/// "half as fast" or "twice as fast").
pub fn verdict_for(lo: f64, hi: f64, threshold: f64) -> Verdict {
    let worse = 1.0 / (1.0 + threshold);
    let better = 1.0 + threshold;
    if hi < worse {
        Verdict::Regressed
    } else if lo > better {
        Verdict::Improved
    } else if lo >= worse && hi <= better {
        Verdict::Unchanged
    } else {
        Verdict::Inconclusive
    }
}

fn incomparable(key: String, reason: String, threshold: f64) -> CaseComparison {
    CaseComparison {
        key,
        metric: String::new(),
        higher_is_better: true,
        base_value: None,
        new_value: None,
        ratio: None,
        ratio_ci95_low: None,
        ratio_ci95_high: None,
        ci_basis: String::new(),
        base_processes: 0,
        new_processes: 0,
        threshold,
        noise_rel: None,
        verdict: Verdict::Incomparable,
        reason,
    }
}

/// Compares one matched pair of cases.
pub fn compare_case(base: &CaseResult, new: &CaseResult, opts: &CompareOptions) -> CaseComparison {
    let key = new.identity();
    let noise = opts
        .calibration
        .as_ref()
        .and_then(|c| c.cases.get(&key))
        .map(|n| n.noise_rel);
    let threshold = opts.threshold.max(noise.unwrap_or(0.0));
    if base.workload.version != new.workload.version {
        return incomparable(
            key,
            format!(
                "workload version differs: base v{}, new v{}",
                base.workload.version, new.workload.version
            ),
            threshold,
        );
    }
    if base.workload.spec != new.workload.spec {
        return incomparable(key, "workload parameters differ".into(), threshold);
    }
    for (side, c) in [("base", base), ("new", new)] {
        if c.status != Status::Ok {
            return incomparable(
                key,
                format!("{side} case is {}: {}", c.status.as_str(), c.status_detail),
                threshold,
            );
        }
    }
    let (Some(hb), Some(hn)) = (&base.headline, &new.headline) else {
        return incomparable(key, "a side has no headline metric".into(), threshold);
    };
    if hb.metric != hn.metric {
        return incomparable(
            key,
            format!("headline metric differs: {} vs {}", hb.metric, hn.metric),
            threshold,
        );
    }
    let (gb, gn) = (groups(base), groups(new));
    // Every headline today is a rate derived from per-iteration time, so the
    // ratio is taken on the raw time samples: rate NEW/BASE = time BASE/NEW.
    let Some((t_ratio, t_lo, t_hi)) = stats::hierarchical_ratio_ci(&gb, &gn, RESAMPLES, SEED)
    else {
        return incomparable(key, "a side has no raw samples".into(), threshold);
    };
    // `g` is oriented so that > 1 is better.
    let (g, g_lo, g_hi) = if hb.higher_is_better {
        (t_ratio, t_lo, t_hi)
    } else {
        (1.0 / t_ratio, 1.0 / t_hi, 1.0 / t_lo)
    };
    let verdict = verdict_for(g_lo, g_hi, threshold);
    let basis = if gb.len() >= 2 && gn.len() >= 2 {
        "between_process"
    } else {
        "within_process"
    };
    let reason = match verdict {
        Verdict::Regressed => format!(
            "worse by more than {:.1}% with 95% confidence",
            threshold * 100.0
        ),
        Verdict::Improved => format!(
            "better by more than {:.1}% with 95% confidence",
            threshold * 100.0
        ),
        Verdict::Unchanged => format!("within ±{:.1}% with 95% confidence", threshold * 100.0),
        _ => format!(
            "the 95% CI crosses ±{:.1}%: re-run with more processes (--repeat) to decide",
            threshold * 100.0
        ),
    };
    let (ratio, lo, hi) = if hb.higher_is_better {
        (g, g_lo, g_hi)
    } else {
        (1.0 / g, 1.0 / g_hi, 1.0 / g_lo)
    };
    CaseComparison {
        key,
        metric: hb.metric.clone(),
        higher_is_better: hb.higher_is_better,
        base_value: Some(hb.value),
        new_value: Some(hn.value),
        ratio: Some(ratio),
        ratio_ci95_low: Some(lo),
        ratio_ci95_high: Some(hi),
        ci_basis: basis.into(),
        base_processes: gb.len(),
        new_processes: gn.len(),
        threshold,
        noise_rel: noise,
        verdict,
        reason: if basis == "within_process" {
            format!("{reason} (one process on a side: the CI misses run-to-run spread)")
        } else {
            reason
        },
    }
}

/// Why two runs' environments make their figures incomparable.
pub fn environment_mismatch(base: &RunFile, new: &RunFile) -> Vec<String> {
    let mut v = vec![];
    if base.env.machine_id != new.env.machine_id {
        v.push(format!(
            "machine fingerprint differs: base {} ({}, {} cores), new {} ({}, {} cores)",
            base.env.machine_id,
            base.env.cpu_model,
            base.env.logical_cores,
            new.env.machine_id,
            new.env.cpu_model,
            new.env.logical_cores
        ));
    }
    if base.options.corpus != new.options.corpus {
        v.push("training corpus differs (--corpus)".to_string());
    }
    if base.options.model != new.options.model {
        v.push("model file differs (--model)".to_string());
    }
    if base.env.build_profile != new.env.build_profile {
        v.push(format!(
            "build profile differs: base {}, new {}",
            base.env.build_profile, new.env.build_profile
        ));
    }
    v
}

pub fn compare_runs(base: &RunFile, new: &RunFile, opts: &CompareOptions) -> Comparison {
    let mismatch = environment_mismatch(base, new);
    let blocked = !mismatch.is_empty() && !opts.allow_machine_mismatch;
    let base_by_key: BTreeMap<String, &CaseResult> =
        base.cases.iter().map(|c| (c.identity(), c)).collect();
    let mut cases = Vec::new();
    for n in &new.cases {
        let key = n.identity();
        let c = match base_by_key.get(&key) {
            None => incomparable(key, "not in the base run".into(), opts.threshold),
            Some(_) if blocked => incomparable(key, mismatch.join("; "), opts.threshold),
            Some(b) => {
                let mut c = compare_case(b, n, opts);
                if !mismatch.is_empty() {
                    c.reason = format!("{} [compared despite: {}]", c.reason, mismatch.join("; "));
                }
                c
            }
        };
        cases.push(c);
    }
    let new_keys: Vec<String> = new.cases.iter().map(CaseResult::identity).collect();
    for key in base_by_key.keys().filter(|k| !new_keys.contains(k)) {
        cases.push(incomparable(
            key.clone(),
            "not in the new run".into(),
            opts.threshold,
        ));
    }
    // Most severe first; within a verdict, the largest change first.
    cases.sort_by(|a, b| {
        a.verdict.cmp(&b.verdict).then_with(|| {
            let dev = |c: &CaseComparison| c.ratio.map(|r| (r.ln()).abs()).unwrap_or(0.0);
            dev(b).total_cmp(&dev(a))
        })
    });
    let mut counts = BTreeMap::new();
    for c in &cases {
        *counts.entry(c.verdict.as_str().to_string()).or_insert(0) += 1;
    }
    let count = |v: Verdict| counts.get(v.as_str()).copied().unwrap_or(0);
    let headline = if count(Verdict::Regressed) > 0 {
        format!(
            "❌ {} of {} cases regressed beyond their threshold",
            count(Verdict::Regressed),
            cases.len()
        )
    } else if blocked {
        format!("⚠️ not compared: {}", mismatch.join("; "))
    } else {
        format!(
            "✅ no regression: {} unchanged, {} improved, {} inconclusive, {} incomparable",
            count(Verdict::Unchanged),
            count(Verdict::Improved),
            count(Verdict::Inconclusive),
            count(Verdict::Incomparable)
        )
    };
    Comparison {
        schema_version: crate::results::SCHEMA_VERSION,
        base: RunRef::of(base),
        new: RunRef::of(new),
        threshold: opts.threshold,
        environment_mismatch: mismatch,
        calibrated: opts.calibration.is_some(),
        counts,
        headline,
        cases,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::fixtures::{case, jittered, run};

    fn opts(threshold: f64) -> CompareOptions {
        CompareOptions {
            threshold,
            allow_machine_mismatch: false,
            calibration: None,
        }
    }

    const W: &str = "kernel/gemm-f32-256";

    #[test]
    fn a_ten_percent_slowdown_is_detected_and_equal_runs_are_not() {
        let base = run("m", vec![case(W, "cpu", jittered(0.010, 3, 0))]);
        let slow = run("m", vec![case(W, "cpu", jittered(0.011, 3, 1))]);
        let same = run("m", vec![case(W, "cpu", jittered(0.010, 3, 2))]);
        let c = compare_runs(&base, &slow, &opts(0.05));
        assert_eq!(c.cases[0].verdict, Verdict::Regressed, "{:?}", c.cases[0]);
        assert!((c.cases[0].ratio.unwrap() - 1.0 / 1.1).abs() < 0.01);
        assert_eq!(c.cases[0].ci_basis, "between_process");
        assert!(c.any_regressed());
        assert!(c.headline.contains("regressed"));
        let c = compare_runs(&base, &same, &opts(0.05));
        assert_eq!(c.cases[0].verdict, Verdict::Unchanged, "{:?}", c.cases[0]);
        assert!(!c.any_regressed());
        // The other direction is an improvement.
        let c = compare_runs(&slow, &base, &opts(0.05));
        assert_eq!(c.cases[0].verdict, Verdict::Improved);
    }

    #[test]
    fn a_change_near_the_threshold_is_inconclusive() {
        let base = run("m", vec![case(W, "cpu", jittered(0.010, 3, 0))]);
        let near = run("m", vec![case(W, "cpu", jittered(0.01052, 3, 1))]);
        let c = compare_runs(&base, &near, &opts(0.05));
        assert_eq!(
            c.cases[0].verdict,
            Verdict::Inconclusive,
            "{:?}",
            c.cases[0]
        );
    }

    #[test]
    fn calibration_widens_the_threshold_of_a_noisy_case() {
        let base = run("m", vec![case(W, "cpu", jittered(0.010, 3, 0))]);
        let slow = run("m", vec![case(W, "cpu", jittered(0.011, 3, 1))]);
        // A/A runs of this case spread by ±8%.
        let aa: Vec<RunFile> = [0.0092, 0.0100, 0.0108]
            .iter()
            .enumerate()
            .map(|(i, m)| run("m", vec![case(W, "cpu", jittered(*m, 3, i))]))
            .collect();
        let cal = crate::analysis::calibration::calibrate(&aa).unwrap();
        let noise = cal.cases[&format!("{W}@cpu")].noise_rel;
        assert!(noise > 0.1, "{noise}");
        let o = CompareOptions {
            calibration: Some(cal),
            ..opts(0.05)
        };
        let c = compare_runs(&base, &slow, &o);
        assert_eq!(c.cases[0].threshold, noise);
        assert_ne!(c.cases[0].verdict, Verdict::Regressed);
        assert!(c.calibrated);
    }

    #[test]
    fn mismatched_versions_machines_and_missing_cases_are_incomparable() {
        let base = run("m", vec![case(W, "cpu", jittered(0.010, 3, 0))]);
        let mut v2 = run("m", vec![case(W, "cpu", jittered(0.010, 3, 1))]);
        v2.cases[0].workload.version = 2;
        let c = compare_runs(&base, &v2, &opts(0.05));
        assert_eq!(c.cases[0].verdict, Verdict::Incomparable);
        assert!(
            c.cases[0].reason.contains("version differs"),
            "{}",
            c.cases[0].reason
        );

        let other = run("other-machine", vec![case(W, "cpu", jittered(0.020, 3, 1))]);
        let c = compare_runs(&base, &other, &opts(0.05));
        assert_eq!(c.cases[0].verdict, Verdict::Incomparable);
        assert!(c.environment_mismatch[0].contains("machine fingerprint differs"));
        assert!(c.headline.contains("not compared"));
        assert!(!c.any_regressed(), "a mismatch is reported, not judged");
        let allowed = CompareOptions {
            allow_machine_mismatch: true,
            ..opts(0.05)
        };
        let c = compare_runs(&base, &other, &allowed);
        assert_eq!(c.cases[0].verdict, Verdict::Regressed);
        assert!(c.cases[0].reason.contains("compared despite"));

        let wider = run(
            "m",
            vec![
                case(W, "cpu", jittered(0.010, 3, 1)),
                case("kernel/gemm-f32-128", "cpu", jittered(0.001, 3, 1)),
            ],
        );
        let c = compare_runs(&base, &wider, &opts(0.05));
        let added = c
            .cases
            .iter()
            .find(|x| x.key.starts_with("kernel/gemm-f32-128"))
            .unwrap();
        assert_eq!(added.verdict, Verdict::Incomparable);
        assert_eq!(added.reason, "not in the base run");
    }

    #[test]
    fn one_process_per_side_says_within_process() {
        let base = run("m", vec![case(W, "cpu", jittered(0.010, 1, 0))]);
        let new = run("m", vec![case(W, "cpu", jittered(0.010, 1, 1))]);
        let c = compare_runs(&base, &new, &opts(0.05));
        assert_eq!(c.cases[0].ci_basis, "within_process");
        assert!(c.cases[0].reason.contains("run-to-run"));
    }

    #[test]
    fn verdicts_follow_the_ci_and_threshold() {
        let t = 0.05;
        assert_eq!(verdict_for(0.85, 0.92, t), Verdict::Regressed);
        assert_eq!(verdict_for(1.08, 1.20, t), Verdict::Improved);
        assert_eq!(verdict_for(0.97, 1.02, t), Verdict::Unchanged);
        // Bounds are multiplicative: 1/1.05 = 0.952.
        assert_eq!(verdict_for(0.94, 0.951, t), Verdict::Regressed);
        assert_eq!(verdict_for(0.953, 1.0, t), Verdict::Unchanged);
        // A 200% noise threshold: worse means below 1/3.
        assert_eq!(verdict_for(0.2, 0.5, 2.0), Verdict::Inconclusive);
        assert_eq!(verdict_for(0.2, 0.3, 2.0), Verdict::Regressed);
        assert_eq!(verdict_for(0.90, 0.97, t), Verdict::Inconclusive);
        assert_eq!(verdict_for(1.02, 1.09, t), Verdict::Inconclusive);
        assert_eq!(verdict_for(0.80, 1.20, t), Verdict::Inconclusive);
    }
}
