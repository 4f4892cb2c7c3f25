//! Turns a case's worker processes into its result: status, headline with a
//! between-process CI, unit-suffixed metrics. Pure; no I/O.

use std::collections::BTreeMap;

use crate::results::{
    CaseEnergy, CaseResult, CaseStats, Headline, PlannedCase, ProcessRecord, SCHEMA_VERSION,
    Status, WorkerOutput, WorkloadRecord,
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

/// The weights hash the case's successful processes ran, checked: all that
/// hashed their weights ran the same ones, and a process that skipped
/// verification names one that passed it on those very weights. `Err`
/// says which processes disagree.
pub fn case_weights(processes: &[ProcessRecord]) -> Result<Option<String>, String> {
    let sha = |w: &WorkerOutput| w.weights.as_ref().and_then(|x| x.sha256.clone());
    let mut first: Option<(usize, String)> = None;
    for p in processes.iter().filter(|p| p.status == Status::Ok) {
        let Some(w) = p.worker.as_ref() else { continue };
        if let Some(by) = w.verified_by_process {
            let voucher = processes
                .iter()
                .find(|q| q.index == by)
                .and_then(|q| q.worker.as_ref());
            let vouched = voucher.is_some_and(|v| {
                v.verification.as_ref().is_some_and(|x| x.passed)
                    && sha(v).is_some()
                    && sha(v) == sha(w)
            });
            if !vouched {
                return Err(format!(
                    "process {} was not verified: process {by}, whose verification it relied on, did not pass one on the same weights",
                    p.index
                ));
            }
        }
        match (sha(w), &first) {
            (Some(h), None) => first = Some((p.index, h)),
            (Some(h), Some((j, f))) if h != *f => {
                return Err(format!(
                    "process {} ran weights sha256 {h}, process {j} ran {f}: the processes did not time the same model",
                    p.index
                ));
            }
            _ => {}
        }
    }
    Ok(first.map(|(_, h)| h))
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
    let (mut status, mut status_detail) = case_status(&processes);
    let weights = case_weights(&processes);
    if let (Err(why), Status::Ok) = (&weights, status) {
        status = Status::Error;
        status_detail = why.clone();
    }
    // Samples of processes that may have timed different models make no figure.
    let stats = weights.is_ok().then(|| case_stats(&processes)).flatten();
    let first_worker = processes.iter().find_map(|p| p.worker.as_ref());
    let device = first_worker.and_then(|w| w.device.clone());
    // The verification that decided the status: a failed one if any.
    let verification = processes
        .iter()
        .filter_map(|p| p.worker.as_ref()?.verification.clone())
        .min_by_key(|v| v.passed);
    let work = first_worker.and_then(|w| w.work_per_iter.clone());
    let flops = work
        .as_ref()
        .map(|w| w.flops)
        .unwrap_or_else(|| spec.flops_per_iter());
    let bytes = work
        .as_ref()
        .map(|w| w.bytes)
        .unwrap_or_else(|| spec.bytes_per_iter());
    let (metric, per_iter) = match &work {
        Some(w) => (w.headline_metric.clone(), w.headline_per_iter),
        None => ("gflops_per_s".to_string(), flops / 1e9),
    };
    let mut metrics = BTreeMap::new();
    let mut tags = BTreeMap::new();
    if let Ok(Some(sha)) = weights {
        tags.insert("weights_sha256".to_string(), sha);
    }
    metrics.insert("flops_per_iter".to_string(), flops);
    metrics.insert("bytes_per_iter".to_string(), bytes);
    let mut headline = None;
    if let Some(s) = &stats {
        metrics.insert("wall_s_median".into(), s.wall_s_median);
        metrics.insert("wall_s_ci95_low".into(), s.wall_s_ci95_low);
        metrics.insert("wall_s_ci95_high".into(), s.wall_s_ci95_high);
        metrics.insert("wall_s_p90".into(), s.pooled_wall_s.p90);
        metrics.insert("wall_s_p99".into(), s.pooled_wall_s.p99);
        // Rates are the inverse of time: the CI bounds swap.
        let rate = |units: f64, wall: f64| units / wall;
        let value = rate(per_iter, s.wall_s_median);
        let (lo, hi) = (
            rate(per_iter, s.wall_s_ci95_high),
            rate(per_iter, s.wall_s_ci95_low),
        );
        metrics.insert(metric.clone(), value);
        metrics.insert(format!("{metric}_ci95_low"), lo);
        metrics.insert(format!("{metric}_ci95_high"), hi);
        // Achieved FLOP/s and bytes/s from the analytic counts, every kind.
        metrics.insert("gflops_per_s".into(), flops / s.wall_s_median / 1e9);
        metrics.insert("gbytes_per_s".into(), bytes / s.wall_s_median / 1e9);
        metrics.insert("samples_total".into(), s.pooled_wall_s.n as f64);
        metrics.insert("processes_ok".into(), s.processes_ok as f64);
        headline = Some(Headline {
            metric,
            value,
            ci95_low: lo,
            ci95_high: hi,
            higher_is_better: true,
        });
    }
    // Extra per-iteration figures, pooled over successful processes.
    let mut extras: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for w in processes
        .iter()
        .filter(|p| p.status == Status::Ok)
        .filter_map(|p| p.worker.as_ref())
    {
        for (k, v) in &w.extra_samples {
            extras.entry(k.clone()).or_default().extend(v);
        }
    }
    // A curve (e.g. the training loss by step) is a series, not samples of
    // one quantity: it stays raw in the processes' extra_samples.
    for (k, v) in extras.iter().filter(|(k, _)| !k.ends_with("_curve")) {
        let sum = stats::summarize(v);
        metrics.insert(format!("{k}_median"), sum.median);
        metrics.insert(format!("{k}_p90"), sum.p90);
        metrics.insert(format!("{k}_p99"), sum.p99);
    }
    if spec.kind == "train"
        && let Some(w) = metrics.get("wall_s_median").copied()
    {
        metrics.insert("steps_per_s".into(), 1.0 / w);
    }
    if let Some(rss) = processes
        .iter()
        .filter_map(|p| p.worker.as_ref()?.usage.peak_rss_bytes)
        .max()
    {
        metrics.insert("peak_rss_bytes".into(), rss as f64);
    }
    super::memory::insert_memory_and_fit(
        &mut metrics,
        &mut tags,
        spec,
        &planned.caps,
        status,
        &processes,
    );
    // Device memory of GPU cases: the highest peak of any process, and the
    // cap they ran under (how each was obtained is in the processes'
    // `worker.device_memory`).
    let device_memory = || {
        processes
            .iter()
            .filter_map(|p| p.worker.as_ref()?.device_memory.as_ref())
    };
    if let Some(peak) = device_memory().filter_map(|m| m.peak_bytes).max() {
        metrics.insert("peak_device_bytes".into(), peak as f64);
    }
    if let Some(cap) = device_memory().find_map(|m| m.cap_bytes) {
        metrics.insert("device_mem_cap_bytes".into(), cap as f64);
    }
    let energy = super::energy::case_energy(spec, &processes);
    if let Some(e) = &energy {
        insert_energy_metrics(&mut metrics, e);
    }
    // Tags the reports group by: the weight format or dtype of the case.
    match &spec.params {
        capbench_workloads::spec::Params::Decode { format, .. } => {
            tags.insert("quant".to_string(), format.as_str().to_string());
        }
        capbench_workloads::spec::Params::Train { dtype, .. }
        | capbench_workloads::spec::Params::TrainQuality { dtype, .. }
        | capbench_workloads::spec::Params::Gemm { dtype, .. } => {
            tags.insert("quant".to_string(), dtype.as_str().to_string());
        }
        _ => {}
    }
    // The training loss curve as (step, loss), from the first process that
    // recorded one (training is deterministic: every process has the same).
    let mut series = BTreeMap::new();
    if let Some(curve) = processes
        .iter()
        .filter_map(|p| p.worker.as_ref()?.extra_samples.get("loss_curve"))
        .next()
    {
        series.insert(
            "loss_curve".to_string(),
            curve
                .iter()
                .enumerate()
                .map(|(i, l)| [(i + 1) as f64, *l])
                .collect(),
        );
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
        caps: planned.caps.clone(),
        status,
        status_detail,
        device,
        verification,
        headline,
        metrics,
        stats,
        tags,
        series,
        processes,
        started_at,
        elapsed_s,
        energy,
    }
}

/// Headline energy figures. Their source label is `energy.figure.source`;
/// the analytic projection gets its own `analytic_` names so it never shares
/// a column with a measured or modelled figure.
fn insert_energy_metrics(metrics: &mut BTreeMap<String, f64>, e: &CaseEnergy) {
    if let Some(f) = &e.figure {
        metrics.insert("energy_j".into(), f.energy_j);
        metrics.insert("energy_j_per_iter".into(), f.energy_j_per_iter);
        metrics.insert("avg_power_w".into(), f.avg_power_w);
        let optional = [
            ("gflops_per_j", f.gflops_per_j),
            ("energy_j_per_token", f.energy_j_per_token),
            ("tokens_per_j", f.tokens_per_j),
            ("energy_j_per_step", f.energy_j_per_step),
            ("steps_per_j", f.steps_per_j),
            (
                "energy_above_idle_j_per_iter",
                f.energy_above_idle_j_per_iter,
            ),
            ("idle_baseline_power_w", f.idle_baseline_power_w),
        ];
        for (k, v) in optional {
            if let Some(v) = v {
                metrics.insert(k.into(), v);
            }
        }
    }
    if let Some(a) = &e.analytic {
        metrics.insert(
            "analytic_energy_j_per_iter_low".into(),
            a.energy_j_per_iter_low,
        );
        metrics.insert(
            "analytic_energy_j_per_iter_high".into(),
            a.energy_j_per_iter_high,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::fixtures::process as proc;
    use crate::results::CapsRecord;

    #[test]
    fn first_failed_process_decides_the_status() {
        let ps = vec![
            proc(0, Status::Ok, vec![1.0]),
            proc(1, Status::Timeout, vec![]),
        ];
        assert_eq!(case_status(&ps).0, Status::Timeout);
        assert_eq!(case_status(&ps[..1]).0, Status::Ok);
    }

    /// The planned case of `spec` on the CPU, uncapped.
    fn planned(spec: &capbench_workloads::WorkloadSpec) -> PlannedCase {
        PlannedCase {
            id: "x".into(),
            workload: spec.name.clone(),
            backend: "cpu".into(),
            caps: CapsRecord::default(),
            sampling: None,
        }
    }

    #[test]
    fn gflops_ci_is_the_inverted_time_ci() {
        let spec = capbench_workloads::WorkloadSpec::parse("kernel/gemm-f32-100").unwrap();
        let planned = planned(&spec);
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
    fn files_written_before_energy_still_read() {
        let spec = capbench_workloads::WorkloadSpec::parse("kernel/gemm-f32-16").unwrap();
        let planned = planned(&spec);
        let c = case_result(
            &planned,
            &spec,
            vec![proc(0, Status::Ok, vec![0.1])],
            "now".into(),
            1.0,
        );
        let mut v = serde_json::to_value(&c).unwrap();
        v.as_object_mut().unwrap().remove("energy");
        let worker = &mut v["processes"][0]["worker"];
        worker.as_object_mut().unwrap().remove("energy");
        let old: CaseResult = serde_json::from_value(v).unwrap();
        assert_eq!(old.energy, None);
        assert_eq!(old.processes[0].worker.as_ref().unwrap().energy, None);
        // Without worker energy there is no figure — and no 0 J metric.
        assert!(c.energy.unwrap().figure.is_none());
        assert!(!c.metrics.contains_key("energy_j_per_iter"));
    }

    /// Process `i` with weights `sha`, verified itself (`by` None, passed)
    /// or relying on process `by`.
    fn hashed(i: usize, sha: &str, by: Option<usize>) -> ProcessRecord {
        let mut p = proc(i, Status::Ok, vec![0.1, 0.11]);
        let w = p.worker.as_mut().unwrap();
        w.weights = Some(capbench_workloads::WeightsRecord::hashed(
            sha.into(),
            "hit",
            "f".into(),
        ));
        w.verified_by_process = by;
        if by.is_none() {
            w.verification = Some(capbench_workloads::Verification {
                passed: true,
                reference: "f32".into(),
                elements_checked: 1,
                max_abs_diff: 0.0,
                max_rel_diff: 0.0,
                scaled_max_diff: 0.0,
                tolerance: 0.1,
                nan_or_inf: 0,
                mean_kl: None,
                top1_agreement: None,
                note: String::new(),
            });
        }
        p
    }

    #[test]
    fn processes_that_ran_other_weights_make_an_error_not_a_figure() {
        let spec = capbench_workloads::WorkloadSpec::parse("decode/dense-tiny/q4_0").unwrap();
        let planned = planned(&spec);
        let same = vec![hashed(0, "aa", None), hashed(1, "aa", Some(0))];
        let c = case_result(&planned, &spec, same, "now".into(), 1.0);
        assert_eq!(c.status, Status::Ok, "{}", c.status_detail);
        assert_eq!(c.tags["weights_sha256"], "aa");
        let other = vec![hashed(0, "aa", None), hashed(1, "bb", None)];
        let c = case_result(&planned, &spec, other, "now".into(), 1.0);
        assert_eq!(c.status, Status::Error);
        assert!(c.status_detail.contains("sha256 bb"), "{}", c.status_detail);
        assert!(c.headline.is_none() && !c.tags.contains_key("weights_sha256"));
        // Relying on a process that verified other weights, or none.
        let wrong_voucher = vec![hashed(0, "aa", None), hashed(1, "bb", Some(0))];
        let c = case_result(&planned, &spec, wrong_voucher, "now".into(), 1.0);
        assert_eq!(c.status, Status::Error);
        assert!(
            c.status_detail.contains("process 1 was not verified"),
            "{}",
            c.status_detail
        );
        let mut unverified = hashed(0, "aa", None);
        unverified.worker.as_mut().unwrap().verification = None;
        let c = case_result(
            &planned,
            &spec,
            vec![unverified, hashed(1, "aa", Some(0))],
            "now".into(),
            1.0,
        );
        assert_eq!(c.status, Status::Error, "{}", c.status_detail);
    }

    #[test]
    fn single_process_says_within_process() {
        let s = case_stats(&[proc(0, Status::Ok, vec![1.0, 1.1, 0.9])]).unwrap();
        assert_eq!(s.ci_basis, "within_process");
        assert!(case_stats(&[proc(0, Status::Crashed, vec![])]).is_none());
    }
}
