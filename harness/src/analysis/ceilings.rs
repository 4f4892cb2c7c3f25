//! A machine's measured ceilings — the best STREAM triad GB/s and GEMM GFLOP/s
//! per dtype of each backend and caps — and the MFU, MBU and roofline bound
//! of every case against them (Williams, Waterman & Patterson, CACM 2009).

use std::collections::BTreeMap;

use super::roofline;
use crate::results::{CaseResult, RunFile, Status};
pub use crate::results::{Ceiling, CeilingKind};

fn gemm_dtype(c: &CaseResult) -> Option<String> {
    match &c.workload.spec.params {
        capbench_workloads::spec::Params::Gemm { dtype, .. } => Some(dtype.as_str().to_string()),
        _ => None,
    }
}

/// The best ok GEMM (per dtype) and STREAM case of each backend × caps.
pub fn from_cases(cases: &[CaseResult], run_id: &str) -> Vec<Ceiling> {
    let mut best: BTreeMap<(CeilingKind, String, Option<usize>, Option<String>), Ceiling> =
        BTreeMap::new();
    for c in cases.iter().filter(|c| c.status == Status::Ok) {
        let (kind, dtype, metric) = if c.workload.name.starts_with("kernel/gemm-") {
            (CeilingKind::Gemm, gemm_dtype(c), "gflops_per_s")
        } else if c.workload.name.starts_with("kernel/stream-") {
            (CeilingKind::Stream, None, "gbytes_per_s")
        } else {
            continue;
        };
        let Some(value) = c.metrics.get(metric).copied() else {
            continue;
        };
        let ci = |s: &str| {
            c.metrics
                .get(&format!("{metric}_ci95_{s}"))
                .copied()
                .unwrap_or(value)
        };
        let ceiling = Ceiling {
            kind,
            backend: c.backend.clone(),
            threads: c.caps.threads,
            dtype,
            value,
            ci95_low: ci("low"),
            ci95_high: ci("high"),
            case: c.id.clone(),
            run_id: run_id.to_string(),
        };
        let e = best.entry(ceiling.key()).or_insert_with(|| ceiling.clone());
        if ceiling.value > e.value {
            *e = ceiling;
        }
    }
    best.into_values().collect()
}

/// The GEMM ceiling a case's utilisation is taken against: its own dtype
/// when measured (f32/f16/bf16 training and GEMM), else f32 — quantized
/// decode has no GEMM of its format, and f32 is the conventional reference.
fn gemm_ceiling_for<'a>(c: &CaseResult, ceilings: &'a [Ceiling]) -> Option<&'a Ceiling> {
    let here = |cl: &&Ceiling| {
        cl.kind == CeilingKind::Gemm && cl.backend == c.backend && cl.threads == c.caps.threads
    };
    let dtype = c.tags.get("quant");
    ceilings
        .iter()
        .filter(here)
        .find(|cl| cl.dtype.as_ref() == dtype)
        .or_else(|| {
            ceilings
                .iter()
                .filter(here)
                .find(|cl| cl.dtype.as_deref() == Some("f32"))
        })
}

fn stream_ceiling_for<'a>(c: &CaseResult, ceilings: &'a [Ceiling]) -> Option<&'a Ceiling> {
    ceilings.iter().find(|cl| {
        cl.kind == CeilingKind::Stream && cl.backend == c.backend && cl.threads == c.caps.threads
    })
}

/// Writes MFU, MBU, the arithmetic intensity and the roofline bound of every
/// ok case from `ceilings` (same backend and caps). Keys: `mfu`, `mbu`,
/// `ceiling_gflops_per_s`, `ceiling_gbytes_per_s`,
/// `arithmetic_intensity_flops_per_byte`, `ridge_flops_per_byte`,
/// `roofline_attainable_gflops_per_s`; tags `roofline_bound`
/// (`memory`/`compute`), `ceiling_gemm_dtype`, `ceilings_run_id`.
pub fn apply(cases: &mut [CaseResult], ceilings: &[Ceiling]) {
    for c in cases.iter_mut().filter(|c| c.status == Status::Ok) {
        let flops = c.metrics.get("flops_per_iter").copied().unwrap_or(0.0);
        let bytes = c.metrics.get("bytes_per_iter").copied().unwrap_or(0.0);
        let ai = roofline::arithmetic_intensity(flops, bytes);
        if let Some(ai) = ai {
            c.metrics
                .insert("arithmetic_intensity_flops_per_byte".into(), ai);
        }
        let peak = gemm_ceiling_for(c, ceilings).cloned();
        let bw = stream_ceiling_for(c, ceilings).cloned();
        if let (Some(p), Some(v)) = (&peak, c.metrics.get("gflops_per_s").copied()) {
            c.metrics.insert("mfu".into(), v / p.value);
            c.metrics.insert("ceiling_gflops_per_s".into(), p.value);
            c.tags.insert(
                "ceiling_gemm_dtype".into(),
                p.dtype.clone().unwrap_or_default(),
            );
            c.tags.insert("ceilings_run_id".into(), p.run_id.clone());
        }
        if let (Some(b), Some(v)) = (&bw, c.metrics.get("gbytes_per_s").copied()) {
            c.metrics.insert("mbu".into(), v / b.value);
            c.metrics.insert("ceiling_gbytes_per_s".into(), b.value);
            c.tags.insert("ceilings_run_id".into(), b.run_id.clone());
        }
        if let (Some(p), Some(b), Some(ai)) = (&peak, &bw, ai) {
            let ridge = roofline::ridge_point(p.value, b.value);
            c.metrics.insert("ridge_flops_per_byte".into(), ridge);
            c.metrics.insert(
                "roofline_attainable_gflops_per_s".into(),
                roofline::attainable_gflops_per_s(ai, p.value, b.value),
            );
            c.tags.insert(
                "roofline_bound".into(),
                roofline::bound(ai, ridge).as_str().into(),
            );
        }
    }
}

/// Ceilings of this run, else borrowed from the other runs of the same
/// machine (a `capbench probe` run): those this run lacks (by backend, caps,
/// kind and dtype) are added, and utilisation recomputed for cases that had
/// none. Returns how many ceilings each run borrowed.
pub fn share_within_machines(runs: &mut [RunFile]) -> Vec<usize> {
    let all: Vec<(String, Ceiling)> = runs
        .iter()
        .flat_map(|r| {
            r.ceilings
                .iter()
                .map(|c| (r.env.machine_id.clone(), c.clone()))
        })
        .collect();
    let mut borrowed = vec![0; runs.len()];
    for (i, run) in runs.iter_mut().enumerate() {
        let mut added = false;
        for (machine, c) in &all {
            if *machine != run.env.machine_id || run.ceilings.iter().any(|o| o.key() == c.key()) {
                continue;
            }
            run.ceilings.push(c.clone());
            borrowed[i] += 1;
            added = true;
        }
        if added {
            let ceilings = run.ceilings.clone();
            let lacking: Vec<usize> = run
                .cases
                .iter()
                .enumerate()
                .filter(|(_, c)| !c.metrics.contains_key("mfu") || !c.metrics.contains_key("mbu"))
                .map(|(k, _)| k)
                .collect();
            for k in lacking {
                apply(std::slice::from_mut(&mut run.cases[k]), &ceilings);
            }
        }
    }
    borrowed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::fixtures::{case, run};

    fn probe_cases() -> Vec<CaseResult> {
        vec![
            // 2·256³ = 33.6 MFLOP in 1 ms → 33.6 GFLOP/s
            case("kernel/gemm-f32-256", "cpu", vec![vec![1e-3; 5]; 2]),
            // 2·512³ = 268 MFLOP in 2 ms → 134 GFLOP/s (the best f32)
            case("kernel/gemm-f32-512", "cpu", vec![vec![2e-3; 5]; 2]),
            case("kernel/gemm-bf16-256", "cpu", vec![vec![0.5e-3; 5]; 2]),
            // 12 B × 1000 in 1 µs → 12 GB/s
            case("kernel/stream-1000", "cpu", vec![vec![1e-6; 5]; 2]),
        ]
    }

    #[test]
    fn best_gemm_per_dtype_and_stream_per_backend() {
        let cl = from_cases(&probe_cases(), "r1");
        assert_eq!(cl.len(), 3, "{cl:?}");
        let f32 = cl
            .iter()
            .find(|c| c.dtype.as_deref() == Some("f32"))
            .unwrap();
        assert!((f32.value - 2.0 * 512f64.powi(3) / 2e-3 / 1e9).abs() < 1e-6);
        assert_eq!(f32.case, "kernel/gemm-f32-512@cpu");
        let s = cl.iter().find(|c| c.kind == CeilingKind::Stream).unwrap();
        assert!((s.value - 12.0).abs() < 1e-6);
    }

    #[test]
    fn bound_and_utilisation_follow_the_roofline() {
        let mut cases = probe_cases();
        let cl = from_cases(&cases, "r1");
        apply(&mut cases, &cl);
        // A STREAM triad: 2 flop per 12 bytes, far below the ridge.
        let s = &cases[3];
        assert_eq!(s.tags["roofline_bound"], "memory");
        assert!((s.metrics["mbu"] - 1.0).abs() < 1e-12);
        // The big GEMM: intensity 512·2/(3·4)·… ≫ ridge (134/12 ≈ 11).
        let g = &cases[1];
        assert_eq!(g.tags["roofline_bound"], "compute");
        assert!((g.metrics["mfu"] - 1.0).abs() < 1e-12);
        // bf16 GEMM measured against the bf16 ceiling, not f32.
        assert_eq!(cases[2].tags["ceiling_gemm_dtype"], "bf16");
    }

    #[test]
    fn a_probe_runs_ceilings_serve_another_run_of_the_same_machine() {
        let mut probe = run("m1", probe_cases());
        probe.ceilings = from_cases(&probe.cases, &probe.run_id);
        let lone = run(
            "m1",
            vec![case("kernel/gemm-f32-128", "cpu", vec![vec![1e-4; 5]; 2])],
        );
        let other_machine = run(
            "m2",
            vec![case("kernel/gemm-f32-128", "cpu", vec![vec![1e-4; 5]; 2])],
        );
        let mut runs = vec![probe, lone, other_machine];
        let n = share_within_machines(&mut runs);
        assert_eq!(n, vec![0, 3, 0]);
        assert!(runs[1].cases[0].metrics.contains_key("mfu"));
        assert_eq!(runs[1].cases[0].tags["ceilings_run_id"], "fixture-m1");
        assert!(!runs[2].cases[0].metrics.contains_key("mfu"));
    }
}
