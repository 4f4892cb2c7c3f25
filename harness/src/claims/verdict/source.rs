//! Projection-source search: the measured case whose efficiency stands in
//! for a claim's workload on another machine (its own, or another size of
//! the same model family), and the projected band that follows from it.

use super::evidence::{Found, backend_ok, exact};
use crate::analysis::projection::{Efficiency, Projection, Work};
use crate::claims::Claim;
use crate::results::merge::SourcedRun;
use crate::results::{CaseResult, Status};

/// A projection source: the measured efficiency and the work to project.
pub(super) struct Source {
    pub(super) eff: Efficiency,
    pub(super) work: Work,
    pub(super) note: Option<String>,
    pub(super) machine_id: String,
    pub(super) size: SourceSize,
}

/// The source case's size against the claim's workload. Efficiency is not
/// size-free: per-op overhead weighs more on a smaller model, so on the
/// measuring VM MBU rose from 0.21 (dense-small) to 0.63 (llama-3.2-1b) in
/// q4_0 decode (scripts/projection-validation.sh; docs/claims.md, "How far
/// off is a projection?"). Another size's efficiency therefore bounds only one end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SourceSize {
    /// The claim's own workload: its efficiency, as measured.
    Same,
    /// A smaller size: a lower bound on the claim's efficiency; the upper
    /// end of the band is the target's roof at 100 %.
    Smaller,
    /// A larger size: only the upper end (the roof at 100 %) holds; the
    /// lower end is open.
    Larger,
}

pub(super) fn family_of(model: &str) -> Option<capbench_workloads::models::Family> {
    capbench_workloads::models::shape(model).map(|c| c.family)
}

/// Same kind, family, weight format/dtype and batch: the workloads whose
/// efficiency may stand in for the claim's (a different size of one model).
pub(super) fn same_family(
    a: &capbench_workloads::WorkloadSpec,
    b: &capbench_workloads::WorkloadSpec,
) -> bool {
    use capbench_workloads::spec::Params as P;
    if a.kind != b.kind {
        return false;
    }
    match (&a.params, &b.params) {
        (
            P::Decode {
                model: ma,
                format: fa,
                batch: ba,
                ..
            },
            P::Decode {
                model: mb,
                format: fb,
                batch: bb,
                ..
            },
        ) => fa == fb && ba == bb && family_of(ma).is_some() && family_of(ma) == family_of(mb),
        (
            P::Train {
                model: ma,
                dtype: da,
                ..
            },
            P::Train {
                model: mb,
                dtype: db,
                ..
            },
        ) => da == db && family_of(ma).is_some() && family_of(ma) == family_of(mb),
        _ => false,
    }
}

pub(super) fn params_of(spec: &capbench_workloads::WorkloadSpec) -> Option<u64> {
    use capbench_workloads::spec::Params as P;
    match &spec.params {
        P::Decode { model, .. } | P::Train { model, .. } | P::TrainQuality { model, .. } => {
            capbench_workloads::models::shape(model).map(|c| c.param_count() as u64)
        }
        _ => None,
    }
}

/// The measured case whose efficiency a projection of the claim uses: the
/// claim's own workload when measured with ceilings, else the largest
/// measured size of the same family, format and batch.
pub(super) fn projection_source(
    claim: &Claim,
    runs: &[SourcedRun],
    machine: Option<&str>,
) -> Result<Source, String> {
    let on_machine = |f: &Found| machine.is_none_or(|m| f.run.run.env.machine_id == m);
    let found = exact(claim, runs);
    let mut why = vec![];
    for f in found
        .iter()
        .filter(|f| f.case.status == Status::Ok && on_machine(f))
    {
        match (
            Efficiency::of_case(f.case, &f.run.run.run_id, &f.run.run.env.machine_id),
            Work::of_case(f.case),
        ) {
            (Ok(eff), Some(work)) => {
                return Ok(Source {
                    eff,
                    work,
                    note: None,
                    machine_id: f.run.run.env.machine_id.clone(),
                    size: SourceSize::Same,
                });
            }
            (Err(e), _) => why.push(e),
            (_, None) => why.push(format!("{} has no work counts", f.case.id)),
        }
    }
    let Some(work) = Work::of_spec(&claim.workload) else {
        why.push(format!(
            "{} has no analytic work counts to project from another size",
            claim.workload.name
        ));
        return Err(why.join("; "));
    };
    // Size of a case: its parameter count where the shape is known, else
    // the bytes one iteration moves.
    let size_of = |c: &CaseResult| {
        params_of(&c.workload.spec)
            .map(|n| n as f64)
            .unwrap_or_else(|| c.metrics.get("bytes_per_iter").copied().unwrap_or(0.0))
    };
    let claim_size = params_of(&claim.workload)
        .map(|n| n as f64)
        .unwrap_or(work.bytes);
    // The nearest size below the claim's (largest first), else the nearest
    // above it: the bound it gives is then the tightest.
    let rank = |c: &CaseResult| {
        let s = size_of(c);
        if s <= claim_size { (0, -s) } else { (1, s) }
    };
    let mut best: Option<(Found, Efficiency)> = None;
    for r in runs {
        for c in r.run.cases.iter().filter(|c| {
            c.status == Status::Ok
                && backend_ok(claim, c)
                && same_family(&c.workload.spec, &claim.workload)
        }) {
            let f = Found { case: c, run: r };
            if !on_machine(&f) {
                continue;
            }
            let eff = match Efficiency::of_case(c, &r.run.run_id, &r.run.env.machine_id) {
                Ok(eff) => eff,
                // Said only when it is a measurement error: a case without
                // ceilings is covered by the message below.
                Err(e) => {
                    if c.tags.contains_key("measurement_error") || e.contains("> 1") {
                        why.push(e);
                    }
                    continue;
                }
            };
            if best.as_ref().is_none_or(|(b, _)| {
                let (a, b) = (rank(c), rank(b.case));
                a.0 < b.0 || (a.0 == b.0 && a.1 < b.1)
            }) {
                best = Some((f, eff));
            }
        }
    }
    match best {
        Some((f, eff)) => {
            let p = |s: &capbench_workloads::WorkloadSpec| {
                params_of(s)
                    .map(|n| match n as f64 {
                        x if x >= 1e9 => format!("{:.2} B", x / 1e9),
                        x => format!("{:.1} M", x / 1e6),
                    })
                    .unwrap_or_else(|| "?".into())
            };
            let size = if size_of(f.case) <= claim_size {
                SourceSize::Smaller
            } else {
                SourceSize::Larger
            };
            let bound = match size {
                SourceSize::Smaller => {
                    "as a lower bound: efficiency grows with model size (per-op overhead weighs less), so the band reaches up to the roof at 100 %"
                }
                _ => {
                    "only as far as the roof at 100 % goes: a smaller model's efficiency can be far lower (per-op overhead), so the band's lower end is open"
                }
            };
            // A nearer size refused as a measurement error is said, so
            // that a reader sees why the source is not the one expected.
            let skipped = if why.is_empty() {
                String::new()
            } else {
                format!("; not used: {}", why.join("; "))
            };
            Ok(Source {
                note: Some(format!(
                    "{} was not measured; the efficiency of {} (same family, format and batch; {} → {} parameters) is carried over {bound}{skipped}",
                    claim.workload.name,
                    f.label(),
                    p(&f.case.workload.spec),
                    p(&claim.workload)
                )),
                machine_id: f.run.run.env.machine_id.clone(),
                eff,
                work,
                size,
            })
        }
        None => {
            why.push(format!(
                "no measured case of {} or of a same-family size with MFU/MBU (ceilings) to project from",
                claim.workload.name
            ));
            Err(why.join("; "))
        }
    }
}

/// A projected figure for `metric`: the headline, the time per iteration,
/// or steps per second.
pub(super) fn projected_metric(
    p: &Projection,
    work: &Work,
    metric: &str,
    kind: &str,
) -> Option<(f64, f64, f64)> {
    if metric == p.metric {
        return Some((p.value, p.ci95_low, p.ci95_high));
    }
    // Interval ends in time: the headline's ends, inverted.
    let t = |rate: f64| work.headline_per_iter / rate;
    match metric {
        "wall_s_median" | "wall_s" => Some((p.wall_s_per_iter, t(p.ci95_high), t(p.ci95_low))),
        "steps_per_s" if kind == "train" => Some((
            1.0 / p.wall_s_per_iter,
            1.0 / t(p.ci95_low),
            1.0 / t(p.ci95_high),
        )),
        _ => None,
    }
}

pub(super) fn widen((v, lo, hi): (f64, f64, f64), u: f64) -> (f64, f64, f64) {
    (v, lo * (1.0 - u), hi * (1.0 + u))
}

/// The band of a projection from another size: the fast end reaches the
/// roof at 100 % (`ideal`: the highest rate, or the shortest time); from a
/// larger size the slow end is open (rate 0, time without bound).
pub(super) fn other_size_band(
    (v, lo, hi): (f64, f64, f64),
    ideal: f64,
    size: SourceSize,
) -> (f64, f64, f64) {
    let rate = ideal >= v;
    let (lo, hi) = (lo.min(ideal), hi.max(ideal));
    match (size, rate) {
        (SourceSize::Larger, true) => (v, 0.0, hi),
        (SourceSize::Larger, false) => (v, lo, f64::INFINITY),
        _ => (v, lo, hi),
    }
}
