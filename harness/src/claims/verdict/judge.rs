//! The per-metric judges: each expectation of a claim (fits, quality,
//! ratio, throughput) against measurements, else against a projection.

use super::evidence::{Found, exact, measured_value, missing_reason, pick_machine, quality_value};
use super::source::{SourceSize, other_size_band, projected_metric, projection_source, widen};
use super::{Basis, CheckOptions, ExpectationVerdict, Outcome};
use crate::analysis::projection::{Projection, Target, project, roof_time};
use crate::claims::{Claim, ClaimSet, Expectation, Op, Value};
use crate::results::Status;
use crate::results::merge::SourcedRun;

/// Judges `band` against `op bound`: supported when the whole band
/// satisfies it, refuted when none of it does, else cannot tell.
pub(super) fn judge(op: Op, bound: f64, lo: f64, hi: f64) -> Outcome {
    if op == Op::Eq {
        return if lo == hi && lo == bound {
            Outcome::Supported
        } else if bound < lo || bound > hi {
            Outcome::Refuted
        } else {
            Outcome::CannotTell
        };
    }
    match (op.holds(lo, bound), op.holds(hi, bound)) {
        (true, true) => Outcome::Supported,
        (false, false) => Outcome::Refuted,
        _ => Outcome::CannotTell,
    }
}

pub(super) fn number(e: &Expectation) -> f64 {
    match e.value {
        Value::Number(v) => v,
        Value::Bool(b) => b as u8 as f64,
    }
}

pub(super) fn cannot(
    e: &Expectation,
    evidence: impl Into<String>,
    reason: impl Into<String>,
) -> ExpectationVerdict {
    ExpectationVerdict {
        expectation: e.text.clone(),
        outcome: Outcome::CannotTell,
        basis: None,
        value: None,
        band_low: None,
        band_high: None,
        evidence: evidence.into(),
        reason: Some(reason.into()),
    }
}

pub(super) fn judged(
    e: &Expectation,
    basis: Basis,
    (v, lo, hi): (f64, f64, f64),
    evidence: String,
) -> ExpectationVerdict {
    let outcome = judge(e.op, number(e), lo, hi);
    let reason = (outcome == Outcome::CannotTell).then(|| {
        format!(
            "the {} [{}, {}] straddles {}",
            match basis {
                Basis::Measured => "95 % CI",
                Basis::Projected => "projected band",
            },
            sig(lo),
            sig(hi),
            sig(number(e))
        )
    });
    ExpectationVerdict {
        expectation: e.text.clone(),
        outcome,
        basis: Some(basis),
        value: Some(v),
        band_low: Some(lo),
        band_high: Some(hi),
        evidence,
        reason,
    }
}

pub(super) fn sig(x: f64) -> String {
    crate::format::sig3(x)
}

pub(super) struct Ctx<'a> {
    pub(super) claim: &'a Claim,
    pub(super) set: &'a ClaimSet,
    pub(super) runs: &'a [SourcedRun],
    pub(super) opts: &'a CheckOptions,
    pub(super) assumptions: Vec<String>,
    pub(super) projections: Vec<Projection>,
}

impl Ctx<'_> {
    pub(super) fn note(&mut self, s: String) {
        if !self.assumptions.contains(&s) {
            self.assumptions.push(s);
        }
    }

    pub(super) fn keep(&mut self, p: &Projection) {
        if !self.projections.contains(p) {
            self.projections.push(p.clone());
        }
    }

    /// `fits = true|false`: measured by a run of the workload under the
    /// claim's memory (the profile's budget, or `mem_cap`) — its
    /// `fit_measured` tag — else predicted from the analytic need against
    /// that memory, with the projection uncertainty as margin.
    pub(super) fn fits(&mut self, e: &Expectation) -> ExpectationVerdict {
        let want = matches!(e.value, Value::Bool(true));
        let gib = |b: f64| format!("{:.2} GiB", b / (1u64 << 30) as f64);
        let cap = match (&self.claim.profile, self.claim.mem_cap_bytes) {
            (Some(p), _) => self.set.profiles[p]
                .memory_bytes
                .map(|m| (m, format!("the memory budget of {p}"))),
            (None, Some(c)) => Some((c as f64, format!("a {} memory cap", gib(c as f64)))),
            (None, None) => None,
        };
        let Some((cap_bytes, cap_words)) = cap else {
            return cannot(e, "", "the profile gives no memory size");
        };
        let found = exact(self.claim, self.runs);
        let under: Vec<(Found, bool)> = found
            .iter()
            .filter(|f| {
                let c = &f.case.caps;
                let same = |b: Option<u64>| b.is_some_and(|b| b as f64 == cap_bytes);
                c.profile.is_some() && c.profile == self.claim.profile
                    || same(c.mem_cap_bytes)
                    || same(c.device_mem_cap_bytes)
            })
            .filter_map(|f| {
                let m = f.case.tags.get("fit_measured")?;
                Some((*f, m == crate::analysis::memory::FITS))
            })
            .collect();
        if let Some((_, fit)) = under.first() {
            let evidence = under
                .iter()
                .map(|(f, fit)| {
                    format!(
                        "{} under {cap_words}: {} ({})",
                        f.label(),
                        if *fit { "fits" } else { "does not fit" },
                        f.case.status.as_str()
                    )
                })
                .collect::<Vec<_>>()
                .join("; ");
            if under.iter().any(|(_, x)| x != fit) {
                return cannot(e, evidence, "runs under this memory disagree");
            }
            let ok = *fit == want;
            return ExpectationVerdict {
                expectation: e.text.clone(),
                outcome: if ok {
                    Outcome::Supported
                } else {
                    Outcome::Refuted
                },
                basis: Some(Basis::Measured),
                value: None,
                band_low: None,
                band_high: None,
                evidence,
                reason: None,
            };
        }
        let Some(need) = self.claim.workload.memory_need_bytes() else {
            return cannot(
                e,
                "",
                format!(
                    "no run of {} under {cap_words}, and no analytic memory need to predict with; run it with --profile or --mem-cap",
                    self.claim.workload.name
                ),
            );
        };
        let u = self.opts.projection_uncertainty_rel;
        let evidence = format!(
            "predicted need {} (±{:.0} %) vs {cap_words} {} — no run under that memory in the results",
            gib(need),
            u * 100.0,
            gib(cap_bytes)
        );
        self.note(format!(
            "fit predicted from the analytic memory need of {}, not measured: run it with --profile/--mem-cap to measure",
            self.claim.workload.name
        ));
        let predicted = if need * (1.0 + u) <= cap_bytes {
            Some(true)
        } else if need * (1.0 - u) > cap_bytes {
            Some(false)
        } else {
            None
        };
        match predicted {
            None => cannot(
                e,
                evidence,
                format!(
                    "the predicted need is within ±{:.0} % of the memory",
                    u * 100.0
                ),
            ),
            Some(fit) => ExpectationVerdict {
                expectation: e.text.clone(),
                outcome: if fit == want {
                    Outcome::Supported
                } else {
                    Outcome::Refuted
                },
                basis: Some(Basis::Projected),
                // The figures are bytes, in the evidence; the value columns
                // hold rates and losses.
                value: None,
                band_low: None,
                band_high: None,
                evidence,
                reason: None,
            },
        }
    }

    pub(super) fn quality(&mut self, e: &Expectation) -> ExpectationVerdict {
        let found = exact(self.claim, self.runs);
        let ok: Vec<(Found, f64)> = found
            .iter()
            .filter(|f| f.case.status == Status::Ok)
            .filter_map(|f| quality_value(f.case, &e.metric).map(|v| (*f, v)))
            .collect();
        if ok.is_empty() {
            let why = if found.iter().any(|f| f.case.status == Status::Ok) {
                format!("{} recorded no {}", self.claim.workload.name, e.metric)
            } else {
                missing_reason(self.claim, &found)
            };
            return cannot(e, "", why);
        }
        let lo = ok.iter().map(|(_, v)| *v).fold(f64::INFINITY, f64::min);
        let hi = ok.iter().map(|(_, v)| *v).fold(f64::NEG_INFINITY, f64::max);
        let evidence = ok
            .iter()
            .map(|(f, v)| format!("{} = {} in {}", e.metric, sig(*v), f.label()))
            .collect::<Vec<_>>()
            .join("; ");
        if self.claim.profile.is_some() {
            self.note(format!(
                "{} is a property of the computation, verified identical on every backend: measured here, it holds on the profile",
                e.metric
            ));
        }
        let mut v = judged(e, Basis::Measured, (ok[0].1, lo, hi), evidence);
        if v.outcome == Outcome::CannotTell && ok.len() > 1 {
            v.reason = Some(format!("the {} cases disagree on {}", ok.len(), e.metric));
        }
        v
    }

    /// Projects onto `target` from the best source; (value band, source).
    pub(super) fn projected(
        &mut self,
        target: &Target,
        metric: &str,
        machine: Option<&str>,
    ) -> Result<((f64, f64, f64), String), String> {
        let src = projection_source(self.claim, self.runs, machine)?;
        let p = project(&src.eff, &src.work, target)?;
        let v = projected_metric(&p, &src.work, metric, &self.claim.workload.kind).ok_or_else(
            || {
                format!(
                    "{metric} cannot be projected; projectable: {}, wall_s_median{}",
                    p.metric,
                    if self.claim.workload.kind == "train" {
                        ", steps_per_s"
                    } else {
                        ""
                    }
                )
            },
        )?;
        if let Some(n) = &src.note {
            self.note(n.clone());
        }
        self.note(p.assumption.clone());
        let evidence = format!(
            "projected from {} (machine {}) onto {}",
            src.eff.case, src.machine_id, target.name
        );
        self.keep(&p);
        let band = widen(v, self.opts.projection_uncertainty_rel);
        if src.size == SourceSize::Same {
            return Ok((band, evidence));
        }
        // Another size: the roof at 100 % efficiency is the fast end.
        let ideal = roof_time(&src.work, target, &src.eff.dtype)
            .and_then(|wall| {
                let rate = src.work.headline_per_iter / wall;
                let q = Projection {
                    value: rate,
                    ci95_low: rate,
                    ci95_high: rate,
                    wall_s_per_iter: wall,
                    ..p.clone()
                };
                projected_metric(&q, &src.work, metric, &self.claim.workload.kind)
            })
            .ok_or_else(|| {
                format!(
                    "{metric} of {} cannot be bounded by {}'s roof",
                    self.claim.workload.name, target.name
                )
            })?
            .0;
        Ok((other_size_band(band, ideal, src.size), evidence))
    }

    pub(super) fn ratio(&mut self, e: &Expectation) -> ExpectationVerdict {
        let base = e.metric.trim_end_matches("_ratio");
        let (Some(p), Some(v)) = (&self.claim.profile, &self.claim.versus) else {
            return cannot(e, "", "a ratio needs profile and versus");
        };
        let (tp, tv) = (self.set.profiles[p].clone(), self.set.profiles[v].clone());
        let a = self.projected(&tp, base, None);
        let b = self.projected(&tv, base, None);
        match (a, b) {
            (Ok(((x, _, _), ev)), Ok(((y, _, _), _))) => {
                // One efficiency on both sides: its CI and the projection
                // uncertainty move both projections together and cancel in
                // the ratio; what is left is the assumption itself, stated.
                let r = x / y;
                self.note(format!(
                    "{base} on {p} ÷ on {v} = {}: the same efficiency assumed on both, so the ratio is the ratio of the spec-sheet roofs that bind; what the two spec sheets do not list (e.g. interconnect) is not modelled",
                    sig(r)
                ));
                judged(e, Basis::Projected, (r, r, r), ev)
            }
            (Err(m), _) | (_, Err(m)) => cannot(e, "", m),
        }
    }

    pub(super) fn throughput(&mut self, e: &Expectation) -> ExpectationVerdict {
        let found = exact(self.claim, self.runs);
        match self.claim.profile.clone() {
            Some(p) => {
                let target = self.set.profiles[&p].clone();
                match self.projected(&target, &e.metric, None) {
                    Ok((v, ev)) => judged(e, Basis::Projected, v, ev),
                    Err(m) => cannot(e, "", m),
                }
            }
            None => {
                let ok: Vec<Found> = found
                    .iter()
                    .copied()
                    .filter(|f| f.case.status == Status::Ok)
                    .collect();
                if ok.is_empty() {
                    // Not measured: project from a same-family size onto
                    // the measuring machine's own ceilings.
                    let machine = match &self.claim.machine {
                        Some(m) => self
                            .runs
                            .iter()
                            .map(|r| &r.run.env)
                            .find(|env| {
                                env.machine_id.starts_with(m.as_str()) || env.hostname == *m
                            })
                            .map(|env| env.machine_id.clone()),
                        None => None,
                    };
                    let src = match projection_source(self.claim, self.runs, machine.as_deref()) {
                        Ok(s) => s,
                        Err(m) => {
                            return cannot(
                                e,
                                "",
                                format!("{}; {m}", missing_reason(self.claim, &found)),
                            );
                        }
                    };
                    let run = self
                        .runs
                        .iter()
                        .find(|r| {
                            r.run.run_id == src.eff.run_id && r.run.env.machine_id == src.machine_id
                        })
                        .expect("source run is among the runs");
                    let backend = src.eff.case.split('@').nth(1).unwrap_or("cpu");
                    let backend = backend.split('+').next().unwrap_or(backend);
                    let threads = run
                        .run
                        .cases
                        .iter()
                        .find(|c| c.id == src.eff.case)
                        .and_then(|c| c.caps.threads);
                    let Some(target) = Target::from_ceilings(
                        &format!("machine {}", src.machine_id),
                        &run.run.ceilings,
                        backend,
                        threads,
                    ) else {
                        return cannot(
                            e,
                            "",
                            format!("the run of {} holds no ceilings", src.eff.case),
                        );
                    };
                    return match self.projected(&target, &e.metric, Some(&src.machine_id)) {
                        Ok((v, ev)) => judged(e, Basis::Projected, v, ev),
                        Err(m) => cannot(e, "", m),
                    };
                }
                let machine = match pick_machine(self.claim, &ok) {
                    Ok(m) => m,
                    Err(m) => return cannot(e, "", m),
                };
                // The best case on that machine (over backends and runs).
                let best = ok
                    .iter()
                    .filter(|f| f.run.run.env.machine_id == machine)
                    .filter_map(|f| measured_value(f.case, &e.metric).map(|v| (*f, v)))
                    .max_by(|a, b| a.1.0.total_cmp(&b.1.0));
                match best {
                    Some((f, v)) => judged(e, Basis::Measured, v, f.label()),
                    None => {
                        let keys: Vec<&String> = ok[0].case.metrics.keys().collect();
                        cannot(
                            e,
                            "",
                            format!(
                                "{} recorded no '{}'; it has {keys:?}",
                                ok[0].case.id, e.metric
                            ),
                        )
                    }
                }
            }
        }
    }
}
