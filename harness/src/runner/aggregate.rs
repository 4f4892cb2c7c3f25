//! Turns a case's worker processes into its result: status, headline with a
//! between-process CI, unit-suffixed metrics. Pure; no I/O.

use std::collections::BTreeMap;

use crate::results::{
    CapsRecord, CaseResult, CaseStats, Headline, PlannedCase, ProcessRecord, SCHEMA_VERSION,
    Status, WorkloadRecord,
};
use crate::stats;

/// The case's status: the first process that did not end `ok` decides it.
pub fn case_status(processes: &[ProcessRecord]) -> (Status, String) {
    match processes.iter().find(|p| p.status != Status::Ok) {
        Some(p) => (
            p.status,
            format!("process {}: {}", p.index, p.status_detail),
        ),
        None => (Status::Ok, String::new()),
    }
}

/// Between-process statistics of the per-iteration wall time. With ≥ 2
/// successful processes the CI is a hierarchical bootstrap over processes and
/// their samples; with one it can only be within-process (and says so).
pub fn case_stats(processes: &[ProcessRecord]) -> Option<CaseStats> {
    let groups: Vec<Vec<f64>> = processes
        .iter()
        .filter(|p| p.status == Status::Ok)
        .filter_map(|p| p.worker.as_ref())
        .map(|w| w.samples_wall_s.clone())
        .filter(|s| !s.is_empty())
        .collect();
    if groups.is_empty() {
        return None;
    }
    let pooled: Vec<f64> = groups.iter().flatten().copied().collect();
    let medians: Vec<f64> = groups.iter().map(|g| stats::median(g)).collect();
    let (point, lo, hi, method, basis) = if groups.len() >= 2 {
        let (p, l, h) = stats::hierarchical_median_ci(
            &groups,
            stats::BOOTSTRAP_RESAMPLES,
            stats::BOOTSTRAP_SEED,
        );
        (
            p,
            l,
            h,
            format!(
                "hierarchical bootstrap over {} worker processes and their samples ({} resamples); point = median of process medians",
                groups.len(),
                stats::BOOTSTRAP_RESAMPLES
            ),
            "between_process".to_string(),
        )
    } else {
        let s = stats::summarize(&groups[0]);
        (
            s.median,
            s.ci95_low,
            s.ci95_high,
            format!(
                "percentile bootstrap of the median within one process ({} resamples); iterations are not independent trials, so this understates run-to-run spread — use --repeat ≥ 2",
                stats::BOOTSTRAP_RESAMPLES
            ),
            "within_process".to_string(),
        )
    };
    let mmed = stats::median(&medians);
    let spread = medians.iter().cloned().fold(f64::MIN, f64::max)
        - medians.iter().cloned().fold(f64::MAX, f64::min);
    Some(CaseStats {
        ci_method: method,
        ci_basis: basis,
        processes_ok: groups.len(),
        wall_s_median: point,
        wall_s_ci95_low: lo,
        wall_s_ci95_high: hi,
        process_medians_wall_s: medians,
        between_process_spread_rel: if mmed > 0.0 { spread / mmed } else { 0.0 },
        pooled_wall_s: stats::summarize(&pooled),
    })
}

/// Assembles the case record from its processes.
pub fn case_result(
    planned: &PlannedCase,
    spec: &capbench_workloads::WorkloadSpec,
    processes: Vec<ProcessRecord>,
    started_at: String,
    elapsed_s: f64,
) -> CaseResult {
    let (status, status_detail) = case_status(&processes);
    let stats = case_stats(&processes);
    let first_worker = processes.iter().find_map(|p| p.worker.as_ref());
    let device = first_worker.and_then(|w| w.device.clone());
    // The verification that decided the status: a failed one if any.
    let verification = processes
        .iter()
        .filter_map(|p| p.worker.as_ref()?.verification.clone())
        .min_by_key(|v| v.passed);
    let flops = spec.flops_per_iter();
    let bytes = spec.bytes_per_iter();
    let mut metrics = BTreeMap::new();
    metrics.insert("flops_per_iter".to_string(), flops);
    metrics.insert("bytes_per_iter".to_string(), bytes);
    let mut headline = None;
    if let Some(s) = &stats {
        let gflops = |wall: f64| flops / wall / 1e9;
        metrics.insert("wall_s_median".into(), s.wall_s_median);
        metrics.insert("wall_s_ci95_low".into(), s.wall_s_ci95_low);
        metrics.insert("wall_s_ci95_high".into(), s.wall_s_ci95_high);
        metrics.insert("wall_s_p90".into(), s.pooled_wall_s.p90);
        metrics.insert("wall_s_p99".into(), s.pooled_wall_s.p99);
        // Throughput is the inverse of time: the CI bounds swap.
        metrics.insert("gflops_per_s".into(), gflops(s.wall_s_median));
        metrics.insert("gflops_per_s_ci95_low".into(), gflops(s.wall_s_ci95_high));
        metrics.insert("gflops_per_s_ci95_high".into(), gflops(s.wall_s_ci95_low));
        metrics.insert("gbytes_per_s".into(), bytes / s.wall_s_median / 1e9);
        metrics.insert("samples_total".into(), s.pooled_wall_s.n as f64);
        metrics.insert("processes_ok".into(), s.processes_ok as f64);
        headline = Some(Headline {
            metric: "gflops_per_s".into(),
            value: gflops(s.wall_s_median),
            ci95_low: gflops(s.wall_s_ci95_high),
            ci95_high: gflops(s.wall_s_ci95_low),
            higher_is_better: true,
        });
    }
    if let Some(rss) = processes
        .iter()
        .filter_map(|p| p.worker.as_ref()?.usage.peak_rss_bytes)
        .max()
    {
        metrics.insert("peak_rss_bytes".into(), rss as f64);
    }
    CaseResult {
        schema_version: SCHEMA_VERSION,
        id: planned.id.clone(),
        kind: spec.kind.clone(),
        workload: WorkloadRecord {
            name: spec.name.clone(),
            version: spec.version,
            spec: spec.clone(),
        },
        backend: planned.backend.clone(),
        caps: CapsRecord {
            threads: planned.caps.threads,
        },
        status,
        status_detail,
        device,
        verification,
        headline,
        metrics,
        stats,
        tags: BTreeMap::new(),
        series: BTreeMap::new(),
        processes,
        started_at,
        elapsed_s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::fixtures::process as proc;

    #[test]
    fn first_failed_process_decides_the_status() {
        let ps = vec![
            proc(0, Status::Ok, vec![1.0]),
            proc(1, Status::Timeout, vec![]),
        ];
        assert_eq!(case_status(&ps).0, Status::Timeout);
        assert_eq!(case_status(&ps[..1]).0, Status::Ok);
    }

    #[test]
    fn gflops_ci_is_the_inverted_time_ci() {
        let spec = capbench_workloads::WorkloadSpec::parse("kernel/gemm-f32-100").unwrap();
        let planned = PlannedCase {
            id: "x".into(),
            workload: spec.name.clone(),
            backend: "cpu".into(),
            caps: CapsRecord::default(),
        };
        let ps = vec![
            proc(0, Status::Ok, vec![0.010, 0.011, 0.009, 0.010]),
            proc(1, Status::Ok, vec![0.012, 0.012, 0.013, 0.011]),
        ];
        let c = case_result(&planned, &spec, ps, "now".into(), 1.0);
        let h = c.headline.unwrap();
        assert!(h.ci95_low <= h.value && h.value <= h.ci95_high, "{h:?}");
        let s = c.stats.unwrap();
        assert_eq!(s.ci_basis, "between_process");
        assert_eq!(s.processes_ok, 2);
        // 2e6 flop / median-of-medians (0.01, 0.012) = 0.011 s
        assert!((h.value - 2e6 / 0.011 / 1e9).abs() < 1e-9);
    }

    #[test]
    fn single_process_says_within_process() {
        let s = case_stats(&[proc(0, Status::Ok, vec![1.0, 1.1, 0.9])]).unwrap();
        assert_eq!(s.ci_basis, "within_process");
        assert!(case_stats(&[proc(0, Status::Crashed, vec![])]).is_none());
    }
}
