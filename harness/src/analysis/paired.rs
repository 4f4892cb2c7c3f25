//! The paired analysis of an interleaved A/B (`capbench ab`): per pair of
//! worker processes (one of each build, run back to back in random order),
//! the log ratio of their median iteration times; across pairs, the
//! Hodges–Lehmann estimate of the shift with its Wilcoxon signed-rank 95% CI.
//! Drift slower than one pair cancels in each ratio.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::compare::{Verdict, verdict_for};
use crate::results::{CaseResult, RunFile, Status};
use crate::stats;

/// How the CI is computed, written into every result.
fn method(quantile: f64) -> String {
    format!(
        "paired: per pair, ln(time BASE / time NEW) where time is the {}th percentile of one worker process's iteration times; Hodges-Lehmann estimate (median of Walsh averages) with its exact Wilcoxon signed-rank 95% CI (Hollander & Wolfe 1999, ch. 3)",
        quantile * 100.0
    )
}

/// Default per-process statistic: the 10th percentile of iteration times.
/// On a shared machine contention only adds time, so the lower tail tracks
/// the code's own cost while the median tracks the neighbours (Chen &
/// Revels 2016, "Robust benchmarking in noisy environments", arXiv:1608.04295,
/// argue for the minimum; a low percentile is as robust to contention and
/// less to a single lucky iteration).
pub const DEFAULT_QUANTILE: f64 = 0.1;

/// Pairs below which no 95% signed-rank interval exists (2^-5 > 0.025).
pub const MIN_PAIRS: usize = 6;

/// The case of one build in one pair, reduced to what the pairing needs:
/// the `quantile` of each process's times (the median across processes).
fn process_time(c: &CaseResult, quantile: f64) -> Option<f64> {
    if c.status != Status::Ok {
        return None;
    }
    let meds: Vec<f64> = c
        .processes
        .iter()
        .filter(|p| p.status == Status::Ok)
        .filter_map(|p| p.worker.as_ref())
        .filter(|w| !w.samples_wall_s.is_empty())
        .map(|w| stats::percentile(&w.samples_wall_s, quantile * 100.0))
        .collect();
    (!meds.is_empty()).then(|| stats::median(&meds))
}

/// Number of subsets of {1..n} per rank sum: the null distribution of the
/// signed-rank statistic T+ (each of the 2^n sign patterns equally likely).
fn signed_rank_counts(n: usize) -> Vec<f64> {
    let max = n * (n + 1) / 2;
    let mut counts = vec![0.0; max + 1];
    counts[0] = 1.0;
    for r in 1..=n {
        for s in (r..=max).rev() {
            counts[s] += counts[s - r];
        }
    }
    counts
}

/// The largest d with P(T+ < d) ≤ alpha/2: the CI is the d-th smallest and
/// d-th largest Walsh average. 0 when no interval of that level exists.
fn signed_rank_depth(n: usize, alpha: f64) -> usize {
    let counts = signed_rank_counts(n);
    let total = 2f64.powi(n as i32);
    let mut cum = 0.0;
    let mut d = 0;
    for c in counts {
        cum += c;
        if cum / total > alpha / 2.0 {
            break;
        }
        d += 1;
    }
    d
}

/// Hodges–Lehmann estimate of the centre of `xs` and its distribution-free
/// 95% CI from the signed-rank test (exact null distribution; valid for a
/// symmetric distribution of differences). `None` below `MIN_PAIRS`.
pub fn hodges_lehmann_ci(xs: &[f64]) -> Option<(f64, f64, f64)> {
    let n = xs.len();
    if n < MIN_PAIRS {
        return None;
    }
    let mut walsh = Vec::with_capacity(n * (n + 1) / 2);
    for i in 0..n {
        for j in i..n {
            walsh.push((xs[i] + xs[j]) / 2.0);
        }
    }
    walsh.sort_by(f64::total_cmp);
    let d = signed_rank_depth(n, 0.05).max(1);
    let m = walsh.len();
    Some((stats::median(&walsh), walsh[d - 1], walsh[m - d]))
}

/// One case's paired comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairedCase {
    pub key: String,
    pub metric: String,
    pub higher_is_better: bool,
    /// Median over pairs of each side's headline value.
    pub base_value: Option<f64>,
    pub new_value: Option<f64>,
    /// NEW / BASE of the headline metric, with its 95% CI.
    pub ratio: Option<f64>,
    pub ratio_ci95_low: Option<f64>,
    pub ratio_ci95_high: Option<f64>,
    /// Pairs in which both builds ran the case successfully.
    pub pairs_used: usize,
    /// Per pair, BASE time / NEW time (> 1: NEW is faster), in pair order.
    pub pair_time_ratios: Vec<f64>,
    pub threshold: f64,
    pub verdict: Verdict,
    pub reason: String,
}

/// One build of an A/B as run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AbSide {
    /// As given: a binary path or a git revision.
    pub spec: String,
    /// The binary that ran.
    pub binary: String,
    /// The commit that binary recorded it was built from.
    pub git_commit: String,
    /// The run of each pair, in pair order (folders base|new/pair-NN).
    pub run_ids: Vec<String>,
}

/// `ab.json`: the whole interleaved A/B.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AbSummary {
    pub schema_version: u32,
    pub method: String,
    pub base: AbSide,
    pub new: AbSide,
    pub pairs: usize,
    /// Seed of the pair orders, and the orders drawn (`AB`: base first).
    pub seed: u64,
    pub orders: Vec<String>,
    pub threshold: f64,
    /// Per-process statistic: this quantile of the iteration times.
    pub quantile: f64,
    pub run_args: Vec<String>,
    /// Build or run-option differences between the two sides (warnings).
    pub environment_mismatch: Vec<String>,
    pub counts: BTreeMap<String, usize>,
    pub headline: String,
    pub cases: Vec<PairedCase>,
}

impl AbSummary {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        base: AbSide,
        new: AbSide,
        pairs: usize,
        seed: u64,
        orders: Vec<String>,
        threshold: f64,
        quantile: f64,
        run_args: Vec<String>,
        environment_mismatch: Vec<String>,
        cases: Vec<PairedCase>,
    ) -> AbSummary {
        let mut counts = BTreeMap::new();
        for c in &cases {
            *counts.entry(c.verdict.as_str().to_string()).or_insert(0) += 1;
        }
        let count = |v: Verdict| counts.get(v.as_str()).copied().unwrap_or(0);
        let headline = if count(Verdict::Regressed) > 0 {
            format!(
                "❌ {} of {} cases regressed beyond ±{:.1}% (interleaved, {pairs} pairs)",
                count(Verdict::Regressed),
                cases.len(),
                threshold * 100.0
            )
        } else {
            format!(
                "✅ no regression (interleaved, {pairs} pairs): {} unchanged, {} improved, {} inconclusive, {} incomparable",
                count(Verdict::Unchanged),
                count(Verdict::Improved),
                count(Verdict::Inconclusive),
                count(Verdict::Incomparable)
            )
        };
        AbSummary {
            schema_version: crate::results::SCHEMA_VERSION,
            method: method(quantile),
            base,
            new,
            pairs,
            seed,
            orders,
            threshold,
            quantile,
            run_args,
            environment_mismatch,
            counts,
            headline,
            cases,
        }
    }
}

/// Compares the cases of `base[i]` and `new[i]` (run i of each build, one
/// pair) over all pairs.
pub fn compare_pairs(
    base: &[RunFile],
    new: &[RunFile],
    threshold: f64,
    quantile: f64,
) -> Vec<PairedCase> {
    let mut keys: BTreeMap<String, ()> = BTreeMap::new();
    for r in base.iter().chain(new) {
        for c in &r.cases {
            keys.insert(c.identity(), ());
        }
    }
    let mut out: Vec<PairedCase> = keys
        .into_keys()
        .map(|k| compare_case(&k, base, new, threshold, quantile))
        .collect();
    out.sort_by(|a, b| {
        a.verdict.cmp(&b.verdict).then_with(|| {
            let dev = |c: &PairedCase| c.ratio.map(|r| r.ln().abs()).unwrap_or(0.0);
            dev(b).total_cmp(&dev(a))
        })
    });
    out
}

fn find<'a>(r: &'a RunFile, key: &str) -> Option<&'a CaseResult> {
    r.cases.iter().find(|c| c.identity() == key)
}

fn compare_case(
    key: &str,
    base: &[RunFile],
    new: &[RunFile],
    threshold: f64,
    quantile: f64,
) -> PairedCase {
    let mut p = PairedCase {
        key: key.to_string(),
        metric: String::new(),
        higher_is_better: true,
        base_value: None,
        new_value: None,
        ratio: None,
        ratio_ci95_low: None,
        ratio_ci95_high: None,
        pairs_used: 0,
        pair_time_ratios: vec![],
        threshold,
        verdict: Verdict::Incomparable,
        reason: String::new(),
    };
    let (mut bv, mut nv, mut logs) = (vec![], vec![], vec![]);
    let mut problems: BTreeMap<String, usize> = BTreeMap::new();
    for (b, n) in base.iter().zip(new) {
        let (Some(cb), Some(cn)) = (find(b, key), find(n, key)) else {
            *problems.entry("missing on a side".into()).or_default() += 1;
            continue;
        };
        if cb.workload.version != cn.workload.version || cb.workload.spec != cn.workload.spec {
            p.reason = format!(
                "workload differs between the builds: base v{}, new v{} (or other parameters)",
                cb.workload.version, cn.workload.version
            );
            return p;
        }
        let (Some(tb), Some(tn)) = (process_time(cb, quantile), process_time(cn, quantile)) else {
            let bad = if cb.status != Status::Ok { cb } else { cn };
            *problems
                .entry(format!("{}: {}", bad.status.as_str(), bad.status_detail))
                .or_default() += 1;
            continue;
        };
        if let (Some(hb), Some(hn)) = (&cb.headline, &cn.headline) {
            p.metric = hb.metric.clone();
            p.higher_is_better = hb.higher_is_better;
            bv.push(hb.value);
            nv.push(hn.value);
        }
        logs.push((tb / tn).ln());
        p.pair_time_ratios.push(tb / tn);
    }
    p.pairs_used = logs.len();
    if !bv.is_empty() {
        p.base_value = Some(stats::median(&bv));
        p.new_value = Some(stats::median(&nv));
    }
    let Some((est, lo, hi)) = hodges_lehmann_ci(&logs) else {
        let why = problems
            .iter()
            .map(|(k, v)| format!("{v}× {k}"))
            .collect::<Vec<_>>()
            .join("; ");
        p.reason = format!(
            "{} usable pairs, {MIN_PAIRS} needed for a 95% CI{}",
            logs.len(),
            if why.is_empty() {
                String::new()
            } else {
                format!(" ({why})")
            }
        );
        return p;
    };
    // Goodness g > 1 means NEW is better: less time per iteration.
    let (g, g_lo, g_hi) = (est.exp(), lo.exp(), hi.exp());
    p.verdict = verdict_for(g_lo, g_hi, threshold);
    let (r, r_lo, r_hi) = if p.higher_is_better {
        (g, g_lo, g_hi)
    } else {
        (1.0 / g, 1.0 / g_hi, 1.0 / g_lo)
    };
    p.ratio = Some(r);
    p.ratio_ci95_low = Some(r_lo);
    p.ratio_ci95_high = Some(r_hi);
    let t = threshold * 100.0;
    p.reason = match p.verdict {
        Verdict::Regressed => format!("worse by more than {t:.1}% with 95% confidence"),
        Verdict::Improved => format!("better by more than {t:.1}% with 95% confidence"),
        Verdict::Unchanged => format!("within ±{t:.1}% with 95% confidence"),
        _ => format!("the 95% CI crosses ±{t:.1}%: run more pairs (--pairs) to decide"),
    };
    if !problems.is_empty() {
        let skipped: usize = problems.values().sum();
        p.reason = format!("{} ({skipped} pairs skipped: a side failed)", p.reason);
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::fixtures::{case, jittered, run};

    #[test]
    fn signed_rank_depths_match_the_tables() {
        // Critical values of the signed-rank tables: n = 6 → the extreme Walsh averages
        // (96.9%), n = 10 → d = 9 (P(T+ ≤ 8) = 0.024), n = 20 → d = 53.
        assert_eq!(signed_rank_depth(5, 0.05), 0);
        assert_eq!(signed_rank_depth(6, 0.05), 1);
        assert_eq!(signed_rank_depth(10, 0.05), 9);
        assert_eq!(signed_rank_depth(20, 0.05), 53);
        assert!(hodges_lehmann_ci(&[0.1; 5]).is_none());
        let (e, lo, hi) = hodges_lehmann_ci(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
        assert_eq!((e, lo, hi), (3.5, 1.0, 6.0));
    }

    fn pairs(base_t: f64, new_t: f64, n: usize) -> (Vec<RunFile>, Vec<RunFile>) {
        // Each pair drifts together: a 30% swing between pairs that the
        // pairing must cancel.
        let drift = |i: usize| 1.0 + 0.3 * ((i % 3) as f64 - 1.0);
        let b = (0..n)
            .map(|i| {
                let c = case(
                    "kernel/gemm-f32-256",
                    "cpu",
                    jittered(base_t * drift(i), 1, i),
                );
                run("m", vec![c])
            })
            .collect();
        let nw = (0..n)
            .map(|i| {
                let c = case(
                    "kernel/gemm-f32-256",
                    "cpu",
                    jittered(new_t * drift(i), 1, i + 50),
                );
                run("m", vec![c])
            })
            .collect();
        (b, nw)
    }

    #[test]
    fn drift_between_pairs_cancels_and_a_slowdown_is_found() {
        let (b, n) = pairs(0.010, 0.010, 10);
        let c = compare_pairs(&b, &n, 0.02, 0.5);
        assert_eq!(c[0].verdict, Verdict::Unchanged, "{:?}", c[0]);
        assert_eq!(c[0].pairs_used, 10);
        let (b, n) = pairs(0.010, 0.0105, 10);
        let c = compare_pairs(&b, &n, 0.02, 0.5);
        assert_eq!(c[0].verdict, Verdict::Regressed, "{:?}", c[0]);
        let r = c[0].ratio.unwrap();
        assert!((r - 1.0 / 1.05).abs() < 0.01, "{r}");
        let c = compare_pairs(&n, &b, 0.02, 0.5);
        assert_eq!(c[0].verdict, Verdict::Improved, "{:?}", c[0]);
    }

    #[test]
    fn too_few_pairs_or_a_failed_side_is_incomparable() {
        let (b, n) = pairs(0.010, 0.011, 5);
        let c = compare_pairs(&b, &n, 0.02, 0.5);
        assert_eq!(c[0].verdict, Verdict::Incomparable);
        assert!(c[0].reason.contains("5 usable pairs"), "{}", c[0].reason);
        let (b, mut n) = pairs(0.010, 0.011, 8);
        n[0].cases[0].status = Status::Crashed;
        n[1].cases.clear();
        let c = compare_pairs(&b, &n, 0.02, 0.5);
        assert_eq!(c[0].pairs_used, 6);
        assert_eq!(c[0].verdict, Verdict::Regressed);
        assert!(c[0].reason.contains("2 pairs skipped"), "{}", c[0].reason);
    }
}
