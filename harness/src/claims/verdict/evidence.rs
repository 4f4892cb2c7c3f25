//! Evidence search: which cases of the given runs measured a claim's
//! workload, their figures with 95 % CIs, and which machine they are from.

use crate::claims::Claim;
use crate::results::merge::SourcedRun;
use crate::results::{CaseResult, Status};

/// Quality figures: a property of the computation, not of the machine, so
/// a measurement on any machine is evidence (the workload is verified to be
/// the same math on every backend).
pub(super) const QUALITY: &[&str] = &[
    "kl_divergence",
    "top1_agreement",
    "excess_loss_nats",
    "eval_loss_nats",
];

/// A case of a run.
#[derive(Clone, Copy)]
pub(super) struct Found<'a> {
    pub(super) case: &'a CaseResult,
    pub(super) run: &'a SourcedRun,
}

impl Found<'_> {
    pub(super) fn label(&self) -> String {
        format!(
            "{} (run {}, machine {} {})",
            self.case.id,
            self.run.run.run_id,
            self.run.run.env.machine_id,
            self.run.run.env.hostname
        )
    }
}

/// Whether a case counts for the claim: its backend (when the claim names
/// one) and its engine (the claim's, else capbench's own).
pub(super) fn backend_ok(claim: &Claim, c: &CaseResult) -> bool {
    let engine = claim
        .engine
        .as_deref()
        .unwrap_or(crate::analysis::projection::OWN_ENGINE);
    if crate::analysis::projection::engine_of(c) != engine {
        return false;
    }
    match &claim.backend {
        None => true,
        // `cuda` matches `cuda:0`, `wgpu` any adapter of wgpu.
        Some(b) => c.backend == *b || c.backend.starts_with(&format!("{b}:")),
    }
}

/// Cases of exactly the claim's workload (name and version), on its backend,
/// on its GGUF file.
pub(super) fn exact<'a>(claim: &Claim, runs: &'a [SourcedRun]) -> Vec<Found<'a>> {
    let mut out = vec![];
    for r in runs {
        if let Some(m) = &claim.model {
            match &r.run.options.model {
                Some(rm) if rm.fnv1a == m.fnv1a => {}
                _ => continue,
            }
        }
        for c in &r.run.cases {
            if c.workload.name == claim.workload.name
                && c.workload.version == claim.workload.version
                && backend_ok(claim, c)
            {
                out.push(Found { case: c, run: r });
            }
        }
    }
    out
}

/// Quality figure of a case (see `QUALITY`).
pub(super) fn quality_value(c: &CaseResult, metric: &str) -> Option<f64> {
    match metric {
        "kl_divergence" => c.verification.as_ref()?.mean_kl,
        "top1_agreement" => c.verification.as_ref()?.top1_agreement,
        m => c.metrics.get(&format!("{m}_median")).copied(),
    }
}

/// A measured metric with its 95 % CI where the run recorded one.
pub(super) fn measured_value(c: &CaseResult, metric: &str) -> Option<(f64, f64, f64)> {
    if let Some(h) = c.headline.as_ref().filter(|h| h.metric == metric) {
        return Some((h.value, h.ci95_low, h.ci95_high));
    }
    let v = c
        .metrics
        .get(metric)
        .or_else(|| c.metrics.get(&format!("{metric}_median")))?;
    let lo = c.metrics.get(&format!("{metric}_ci95_low")).unwrap_or(v);
    let hi = c.metrics.get(&format!("{metric}_ci95_high")).unwrap_or(v);
    Some((*v, lo.min(*v), hi.max(*v)))
}

/// Why nothing was measured, for the reader: failed cases, or none at all.
pub(super) fn missing_reason(claim: &Claim, found: &[Found]) -> String {
    let failed: Vec<String> = found
        .iter()
        .filter(|f| f.case.status != Status::Ok)
        .map(|f| {
            format!(
                "{} ended {}: {}",
                f.label(),
                f.case.status.as_str(),
                f.case.status_detail
            )
        })
        .collect();
    if !failed.is_empty() {
        return failed.join("; ");
    }
    match &claim.model {
        Some(m) => format!(
            "no result decoded {} (FNV-1a {}); run `capbench run --model {}` and pass its folder",
            m.path, m.fnv1a, m.path
        ),
        None => format!(
            "no result of {} in the results; run `capbench run --workload '{}'` (or `capbench check --run`) and pass its folder",
            claim.workload.name, claim.workload.name
        ),
    }
}

/// The machine a claim without a profile is judged on: the one named by
/// `machine`, else the only one among the cases.
pub(super) fn pick_machine(claim: &Claim, found: &[Found]) -> Result<String, String> {
    let mut ids: Vec<(String, String)> = vec![];
    for f in found {
        let e = &f.run.run.env;
        if !ids.iter().any(|(i, _)| *i == e.machine_id) {
            ids.push((e.machine_id.clone(), e.hostname.clone()));
        }
    }
    if let Some(m) = &claim.machine {
        return ids
            .iter()
            .find(|(id, host)| id.starts_with(m.as_str()) || host == m)
            .map(|(id, _)| id.clone())
            .ok_or_else(|| format!("machine '{m}' is not among the results' machines {ids:?}"));
    }
    match ids.as_slice() {
        [(one, _)] => Ok(one.clone()),
        [] => Err("no machine measured it".into()),
        many => Err(format!(
            "measured on {} machines ({}); name one with machine = \"<id or hostname>\" or give a profile",
            many.len(),
            many.iter()
                .map(|(i, h)| format!("{i} {h}"))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}
