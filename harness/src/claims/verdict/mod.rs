//! Claims → verdicts: each expectation of a claim judged against measured
//! results (with their 95 % CIs) or against a projection (with its assumed
//! efficiency and uncertainty band): supported, refuted, or cannot tell —
//! and why. Pure; no I/O.

use serde::{Deserialize, Serialize};

mod evidence;
mod judge;
mod source;
#[cfg(test)]
mod tests;

use evidence::QUALITY;
use judge::Ctx;

use crate::analysis::projection::Projection;
use crate::claims::{Claim, ClaimSet};
use crate::results::SCHEMA_VERSION;
use crate::results::merge::SourcedRun;

/// Options of `capbench check`.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// Relative error a projection is assumed to carry beyond its
    /// efficiency's CI (the projection-validation error, docs/claims.md).
    pub projection_uncertainty_rel: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    Measured,
    Projected,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Supported,
    Refuted,
    CannotTell,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClaimVerdictKind {
    SupportedMeasured,
    SupportedProjected,
    RefutedMeasured,
    RefutedProjected,
    CannotTell,
}

impl ClaimVerdictKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ClaimVerdictKind::SupportedMeasured => "supported (measured)",
            ClaimVerdictKind::SupportedProjected => "supported (projected)",
            ClaimVerdictKind::RefutedMeasured => "refuted (measured)",
            ClaimVerdictKind::RefutedProjected => "refuted (projected)",
            ClaimVerdictKind::CannotTell => "cannot tell",
        }
    }
}

/// One expectation's verdict and the evidence for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExpectationVerdict {
    pub expectation: String,
    pub outcome: Outcome,
    /// `None` when there was nothing to judge.
    pub basis: Option<Basis>,
    pub value: Option<f64>,
    /// The interval judged: the 95 % CI of a measurement, or a projection's
    /// efficiency CI widened by the projection uncertainty.
    pub band_low: Option<f64>,
    pub band_high: Option<f64>,
    /// Which case(s) of which run the value came from.
    pub evidence: String,
    /// Why it cannot tell (or what else the reader should know).
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClaimVerdict {
    pub id: String,
    pub statement: String,
    pub workload: String,
    pub profile: Option<String>,
    pub versus: Option<String>,
    pub verdict: ClaimVerdictKind,
    pub expectations: Vec<ExpectationVerdict>,
    /// What the projected figures assume (efficiency, target figures).
    pub assumptions: Vec<String>,
    pub projections: Vec<Projection>,
}

/// The output of `capbench check` (`--format json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckReport {
    pub schema_version: u32,
    pub claims_file: String,
    pub results: Vec<String>,
    pub projection_uncertainty_rel: f64,
    pub claims: Vec<ClaimVerdict>,
}

impl CheckReport {
    pub fn all_supported(&self) -> bool {
        self.claims.iter().all(|c| {
            matches!(
                c.verdict,
                ClaimVerdictKind::SupportedMeasured | ClaimVerdictKind::SupportedProjected
            )
        })
    }
}

/// Judges one claim.
pub fn check_claim(
    claim: &Claim,
    set: &ClaimSet,
    runs: &[SourcedRun],
    opts: &CheckOptions,
) -> ClaimVerdict {
    let mut ctx = Ctx {
        claim,
        set,
        runs,
        opts,
        assumptions: vec![],
        projections: vec![],
    };
    let mut out = vec![];
    for e in &claim.expect {
        let v = if e.metric == "fits" {
            ctx.fits(e)
        } else if QUALITY.contains(&e.metric.as_str()) {
            ctx.quality(e)
        } else if e.metric.ends_with("_ratio") {
            ctx.ratio(e)
        } else {
            ctx.throughput(e)
        };
        out.push(v);
    }
    if out.iter().any(|v| v.basis == Some(Basis::Projected)) {
        ctx.note(format!(
            "projected bands are the source's 95 % CI widened by ±{:.0} % (--projection-uncertainty)",
            opts.projection_uncertainty_rel * 100.0
        ));
    }
    let refuted: Vec<&ExpectationVerdict> = out
        .iter()
        .filter(|v| v.outcome == Outcome::Refuted)
        .collect();
    let verdict = if !refuted.is_empty() {
        if refuted.iter().any(|v| v.basis == Some(Basis::Measured)) {
            ClaimVerdictKind::RefutedMeasured
        } else {
            ClaimVerdictKind::RefutedProjected
        }
    } else if out.iter().any(|v| v.outcome == Outcome::CannotTell) {
        ClaimVerdictKind::CannotTell
    } else if out.iter().any(|v| v.basis == Some(Basis::Projected)) {
        ClaimVerdictKind::SupportedProjected
    } else {
        ClaimVerdictKind::SupportedMeasured
    };
    ClaimVerdict {
        id: claim.id.clone(),
        statement: claim.statement.clone(),
        workload: claim.workload.name.clone(),
        profile: claim.profile.clone(),
        versus: claim.versus.clone(),
        verdict,
        expectations: out,
        assumptions: ctx.assumptions,
        projections: ctx.projections,
    }
}

/// Judges every claim of `set` against `runs` (ceilings shared within each
/// machine first, so a probe run serves the other runs of its machine).
pub fn check(set: &ClaimSet, runs: &[SourcedRun], opts: &CheckOptions) -> CheckReport {
    let mut runs = runs.to_vec();
    let mut files: Vec<crate::results::RunFile> = runs.iter().map(|r| r.run.clone()).collect();
    crate::analysis::ceilings::share_within_machines(&mut files);
    for (r, f) in runs.iter_mut().zip(files) {
        r.run = f;
    }
    CheckReport {
        schema_version: SCHEMA_VERSION,
        claims_file: set.path.clone(),
        results: runs.iter().map(|r| r.source.clone()).collect(),
        projection_uncertainty_rel: opts.projection_uncertainty_rel,
        claims: set
            .claims
            .iter()
            .map(|c| check_claim(c, set, &runs, opts))
            .collect(),
    }
}
