//! A case's energy from its worker processes: one labelled figure from the
//! source they used (never combining different sources), and the analytic
//! projection beside it. Pure; no I/O.

use std::collections::BTreeSet;

use capbench_workloads::WorkloadSpec;
use capbench_workloads::spec::Params;

use crate::meter::energy::analytic;
use crate::results::{CaseEnergy, EnergyFigure, ProcessRecord, Status};

/// Energy per iteration (and per token/step where the workload reports
/// them) over the successful processes: Σ energy / Σ iterations.
pub fn case_energy(spec: &WorkloadSpec, processes: &[ProcessRecord]) -> Option<CaseEnergy> {
    use capbench_workloads::spec::{DType, WeightFmt};
    // The dtype the arithmetic runs in (quantized decode computes in f32).
    let compute_dtype = match &spec.params {
        Params::Gemm { dtype, .. }
        | Params::Train { dtype, .. }
        | Params::TrainQuality { dtype, .. } => Some(*dtype),
        Params::Stream { .. } | Params::Read { .. } | Params::Attention { .. } => Some(DType::F32),
        Params::Decode { format, .. } => Some(match format {
            WeightFmt::F16 => DType::F16,
            WeightFmt::Bf16 => DType::Bf16,
            _ => DType::F32,
        }),
        Params::Fault { .. } => None,
    };
    // The work the workers reported (a GGUF file's is known only to them),
    // else the analytic work of the name.
    let reported = processes
        .iter()
        .find_map(|p| p.worker.as_ref()?.work_per_iter.clone());
    let (flops, bytes) = match &reported {
        Some(w) => (w.flops, w.bytes),
        None => (spec.flops_per_iter(), spec.bytes_per_iter()),
    };
    let analytic = compute_dtype
        .filter(|_| flops > 0.0 || bytes > 0.0)
        .map(|dt| analytic::estimate(flops, bytes, dt));
    let workers: Vec<_> = processes
        .iter()
        .filter(|p| p.status == Status::Ok)
        .filter_map(|p| p.worker.as_ref())
        .collect();
    let energies: Vec<_> = workers.iter().filter_map(|w| w.energy.as_ref()).collect();
    if energies.is_empty() && analytic.is_none() {
        return None;
    }
    let sources_tried = energies
        .first()
        .map(|e| e.sources_tried.clone())
        .unwrap_or_default();
    let ms: Vec<_> = energies
        .iter()
        .filter_map(|e| e.measurement.as_ref())
        .filter(|m| m.iters > 0)
        .collect();
    let kinds: BTreeSet<_> = ms.iter().map(|m| (m.source, m.meter.as_str())).collect();
    let mut failure = energies.iter().find_map(|e| e.failure.clone());
    let figure = if kinds.len() > 1 {
        failure = Some(format!(
            "processes used different sources ({}): not combined; see processes[].worker.energy",
            kinds
                .iter()
                .map(|(s, m)| format!("{m} {}", s.as_str()))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        None
    } else if ms.is_empty() {
        if failure.is_none() && !workers.is_empty() {
            failure = Some("no process recorded energy".into());
        }
        None
    } else {
        let first = ms[0];
        let energy_j: f64 = ms.iter().map(|m| m.energy_j).sum();
        let wall_s: f64 = ms.iter().map(|m| m.wall_s).sum();
        let iters: usize = ms.iter().map(|m| m.iters).sum();
        let per_iter = energy_j / iters as f64;
        let work = workers.iter().find_map(|w| w.work_per_iter.clone());
        let per = |units: Option<f64>| units.filter(|u| *u > 0.0).map(|u| per_iter / u);
        let per_token = per(work.as_ref().and_then(|w| w.tokens));
        let per_step = per(work.as_ref().and_then(|w| w.steps));
        let baselines: Vec<_> = ms.iter().filter_map(|m| m.idle_baseline.as_ref()).collect();
        let above: Option<f64> = (baselines.len() == ms.len())
            .then(|| ms.iter().filter_map(|m| m.energy_above_idle_j).sum());
        Some(EnergyFigure {
            source: first.source,
            meter: first.meter.clone(),
            domains: first.domains.clone(),
            resolution_j: first.resolution_j,
            sample_interval_s: first.sample_interval_s,
            processes: ms.len(),
            readings: ms.iter().map(|m| m.readings).sum(),
            energy_j,
            wall_s,
            iters,
            energy_j_per_iter: per_iter,
            energy_j_per_token: per_token,
            tokens_per_j: per_token.map(|e| 1.0 / e),
            energy_j_per_step: per_step,
            steps_per_j: per_step.map(|e| 1.0 / e),
            avg_power_w: if wall_s > 0.0 { energy_j / wall_s } else { 0.0 },
            gflops_per_j: (flops > 0.0 && per_iter > 0.0).then(|| flops / per_iter / 1e9),
            idle_baseline_power_w: (!baselines.is_empty())
                .then(|| baselines.iter().map(|b| b.power_w).sum::<f64>() / baselines.len() as f64),
            energy_above_idle_j: above,
            energy_above_idle_j_per_iter: above.map(|a| a / iters as f64),
            model_inputs: first.model_inputs.clone(),
        })
    };
    Some(CaseEnergy {
        figure,
        failure,
        sources_tried,
        analytic,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meter::energy::{EnergyMeasurement, EnergySource, IdleBaseline, WorkerEnergy};
    use crate::results::WorkPerIterRecord;

    fn measurement(
        source: EnergySource,
        meter: &str,
        energy_j: f64,
        iters: usize,
    ) -> EnergyMeasurement {
        let measured = source == EnergySource::Measured;
        EnergyMeasurement {
            source,
            meter: meter.into(),
            domains: vec!["package-0".into()],
            resolution_j: Some(1e-6),
            sample_interval_s: None,
            energy_j,
            wall_s: 2.0,
            iters,
            readings: 2,
            per_domain_j: Default::default(),
            idle_baseline: measured.then_some(IdleBaseline {
                wall_s: 0.2,
                energy_j: 0.2,
                power_w: 1.0,
            }),
            energy_above_idle_j: measured.then_some(energy_j - 2.0),
            model_inputs: None,
        }
    }

    fn proc(m: Option<EnergyMeasurement>, tokens: Option<f64>) -> ProcessRecord {
        let mut p = crate::analysis::fixtures::process(0, Status::Ok, vec![0.1]);
        let w = p.worker.as_mut().expect("fixture has a worker");
        w.work_per_iter = Some(WorkPerIterRecord {
            flops: 2e6,
            bytes: 1.2e4,
            headline_metric: "gflops_per_s".into(),
            headline_per_iter: 2e-3,
            tokens,
            steps: None,
        });
        w.energy = Some(WorkerEnergy {
            sources_tried: vec![],
            failure: m.is_none().then(|| "no source".to_string()),
            measurement: m,
        });
        p
    }

    fn gemm() -> WorkloadSpec {
        WorkloadSpec::parse("kernel/gemm-f32-100").unwrap()
    }

    #[test]
    fn figure_is_total_energy_over_total_iterations() {
        let ps = vec![
            proc(
                Some(measurement(EnergySource::Measured, "rapl", 10.0, 10)),
                None,
            ),
            proc(
                Some(measurement(EnergySource::Measured, "rapl", 30.0, 30)),
                None,
            ),
        ];
        let e = case_energy(&gemm(), &ps).unwrap();
        let f = e.figure.unwrap();
        assert_eq!(f.source, EnergySource::Measured);
        assert_eq!((f.energy_j, f.iters, f.processes), (40.0, 40, 2));
        assert_eq!(f.energy_j_per_iter, 1.0);
        assert_eq!(f.avg_power_w, 10.0);
        // 2·100³ FLOP per 1 J.
        assert!((f.gflops_per_j.unwrap() - 2e6 / 1e9).abs() < 1e-15);
        assert_eq!(f.idle_baseline_power_w, Some(1.0));
        assert_eq!(f.energy_above_idle_j, Some(36.0));
        assert_eq!(f.energy_j_per_token, None);
        assert!(e.analytic.unwrap().energy_j_per_iter_low > 0.0);
    }

    #[test]
    fn tokens_give_per_token_figures() {
        let ps = vec![proc(
            Some(measurement(
                EnergySource::Modelled,
                "cpu_time_model",
                8.0,
                4,
            )),
            Some(16.0),
        )];
        let f = case_energy(&gemm(), &ps).unwrap().figure.unwrap();
        assert_eq!(f.energy_j_per_token, Some(2.0 / 16.0));
        assert_eq!(f.tokens_per_j, Some(8.0));
        assert_eq!(f.idle_baseline_power_w, None);
    }

    #[test]
    fn different_sources_are_not_combined_and_missing_is_not_zero() {
        let ps = vec![
            proc(
                Some(measurement(EnergySource::Measured, "rapl", 1.0, 1)),
                None,
            ),
            proc(
                Some(measurement(
                    EnergySource::Modelled,
                    "cpu_time_model",
                    1.0,
                    1,
                )),
                None,
            ),
        ];
        let e = case_energy(&gemm(), &ps).unwrap();
        assert!(e.figure.is_none());
        assert!(e.failure.unwrap().contains("not combined"));
        let e = case_energy(&gemm(), &[proc(None, None)]).unwrap();
        assert!(e.figure.is_none());
        assert_eq!(e.failure.as_deref(), Some("no source"));
    }
}
