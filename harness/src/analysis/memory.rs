//! A case's memory figures (heap and resident peaks, device peak) and, under
//! a memory cap, fits / does not fit: predicted from the workload's analytic
//! need, measured from how the case ended. Pure; no I/O.

use std::collections::BTreeMap;

use capbench_workloads::WorkloadSpec;

use crate::results::{CapsRecord, ProcessRecord, Status};

/// Tag values of `fit_predicted` and `fit_measured`.
pub const FITS: &str = "fits";
pub const DOES_NOT_FIT: &str = "does_not_fit";

fn max_of(it: impl Iterator<Item = u64>) -> Option<u64> {
    it.max()
}

/// Adds `peak_alloc_bytes` (heap, whole process), `peak_alloc_run_bytes`
/// (warm-up and timing), `peak_alloc_workload_bytes` (prepare and run: what
/// the cap governs) with the predictor's relative error against it,
/// `peak_device_bytes`, the caps, and under a cap `predicted_need_bytes`
/// with the `fit_predicted` / `fit_measured` tags.
pub fn insert_memory_and_fit(
    metrics: &mut BTreeMap<String, f64>,
    tags: &mut BTreeMap<String, String>,
    spec: &WorkloadSpec,
    caps: &CapsRecord,
    status: Status,
    processes: &[ProcessRecord],
) {
    let mems: Vec<_> = processes
        .iter()
        .filter_map(|p| p.worker.as_ref()?.memory.as_ref())
        .collect();
    // A process ended by the cap has no worker output: its peak up to the
    // refusal is in the process record.
    if let Some(b) = max_of(
        mems.iter()
            .map(|m| m.alloc_peak_bytes)
            .chain(processes.iter().filter_map(|p| p.oom_peak_bytes)),
    ) {
        metrics.insert("peak_alloc_bytes".into(), b as f64);
    }
    if let Some(b) = max_of(mems.iter().map(|m| m.alloc_peak_run_bytes)) {
        metrics.insert("peak_alloc_run_bytes".into(), b as f64);
    }
    // What the cap governs: prepare, warm-up and timing (verification runs
    // uncapped). The predictor is judged against this.
    if let Some(b) = max_of(
        mems.iter()
            .map(|m| m.alloc_peak_prepare_bytes.max(m.alloc_peak_run_bytes)),
    ) {
        metrics.insert("peak_alloc_workload_bytes".into(), b as f64);
        if let Some(need) = spec.memory_need_bytes()
            && b > 0
            && status == Status::Ok
        {
            metrics.insert("predicted_need_error_rel".into(), need / b as f64 - 1.0);
        }
    }
    if let Some(b) = max_of(mems.iter().filter_map(|m| m.device_peak_bytes)) {
        metrics.insert("peak_device_bytes".into(), b as f64);
    }
    let applied: Vec<_> = processes
        .iter()
        .filter_map(|p| p.worker.as_ref()?.caps_applied.as_ref())
        .collect();
    if let Some(t) = caps.threads {
        metrics.insert("threads_requested".into(), t as f64);
    }
    if let Some(a) = applied.first() {
        metrics.insert("threads_pool".into(), a.threads_pool as f64);
    }
    let par: Vec<f64> = applied.iter().filter_map(|a| a.cpu_parallelism).collect();
    let busy: Vec<f64> = applied
        .iter()
        .filter_map(|a| a.threads_busy.map(|b| b as f64))
        .collect();
    if !busy.is_empty() {
        metrics.insert("threads_busy_median".into(), crate::stats::median(&busy));
    }
    if !par.is_empty() {
        metrics.insert("cpu_parallelism_median".into(), crate::stats::median(&par));
    }
    if let Some(c) = caps.mem_cap_bytes {
        metrics.insert("mem_cap_bytes".into(), c as f64);
    }
    if let Some(c) = caps.device_mem_cap_bytes {
        metrics.insert("device_mem_cap_bytes".into(), c as f64);
    }
    if let Some(p) = &caps.profile {
        tags.insert("profile".into(), p.clone());
    }
    // The cap the workload's memory meets: the device cap where the worker
    // applied one (wgpu), else the host cap.
    let device_applied = applied.iter().any(|a| a.device_mem_cap_bytes.is_some());
    let cap = if device_applied {
        caps.device_mem_cap_bytes
    } else {
        caps.mem_cap_bytes.or(caps.device_mem_cap_bytes)
    };
    let Some(cap) = cap else { return };
    if let Some(need) = spec.memory_need_bytes() {
        metrics.insert("predicted_need_bytes".into(), need);
        tags.insert(
            "fit_predicted".into(),
            if need <= cap as f64 {
                FITS
            } else {
                DOES_NOT_FIT
            }
            .into(),
        );
    }
    let measured = match status {
        Status::Ok => Some(FITS),
        Status::Oom => Some(DOES_NOT_FIT),
        _ => None,
    };
    if let Some(m) = measured {
        tags.insert("fit_measured".into(), m.into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::fixtures::process;

    #[test]
    fn fit_is_predicted_and_measured_under_a_cap() {
        let spec = WorkloadSpec::parse("kernel/gemm-f32-512").unwrap();
        let need = spec.memory_need_bytes().unwrap();
        let run = |cap: u64, status| {
            let (mut m, mut t) = (BTreeMap::new(), BTreeMap::new());
            let caps = CapsRecord {
                mem_cap_bytes: Some(cap),
                ..Default::default()
            };
            let ps = vec![process(0, status, vec![0.1])];
            insert_memory_and_fit(&mut m, &mut t, &spec, &caps, status, &ps);
            (m, t)
        };
        let (m, t) = run(need as u64 * 2, Status::Ok);
        assert_eq!(m["predicted_need_bytes"], need);
        assert_eq!(m["mem_cap_bytes"], (need as u64 * 2) as f64);
        assert_eq!(
            (t["fit_predicted"].as_str(), t["fit_measured"].as_str()),
            (FITS, FITS)
        );
        let (_, t) = run(need as u64 / 2, Status::Oom);
        assert_eq!(
            (t["fit_predicted"].as_str(), t["fit_measured"].as_str()),
            (DOES_NOT_FIT, DOES_NOT_FIT)
        );
        // Uncapped: no fit verdict at all.
        let (mut m, mut t) = (BTreeMap::new(), BTreeMap::new());
        insert_memory_and_fit(
            &mut m,
            &mut t,
            &spec,
            &CapsRecord::default(),
            Status::Ok,
            &[],
        );
        assert!(!t.contains_key("fit_predicted") && !m.contains_key("mem_cap_bytes"));
    }
}
