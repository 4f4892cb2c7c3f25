//! Claims → verdicts: each expectation of a claim judged against measured
//! results (with their 95 % CIs) or against a projection (with its assumed
//! efficiency and uncertainty band): supported, refuted, or cannot tell —
//! and why. Pure; no I/O.

use serde::{Deserialize, Serialize};

use super::projection::{Efficiency, Projection, Target, Work, project, roof_time};
use crate::claims::{Claim, ClaimSet, Expectation, Op, Value};
use crate::results::merge::SourcedRun;
use crate::results::{CaseResult, SCHEMA_VERSION, Status};

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

/// Quality figures: a property of the computation, not of the machine, so
/// a measurement on any machine is evidence (the workload is verified to be
/// the same math on every backend).
const QUALITY: &[&str] = &[
    "kl_divergence",
    "top1_agreement",
    "excess_loss_nats",
    "eval_loss_nats",
];

/// A case of a run.
#[derive(Clone, Copy)]
struct Found<'a> {
    case: &'a CaseResult,
    run: &'a SourcedRun,
}

impl Found<'_> {
    fn label(&self) -> String {
        format!(
            "{} (run {}, machine {} {})",
            self.case.id,
            self.run.run.run_id,
            self.run.run.env.machine_id,
            self.run.run.env.hostname
        )
    }
}

fn backend_ok(claim: &Claim, c: &CaseResult) -> bool {
    match &claim.backend {
        None => true,
        // `cuda` matches `cuda:0`, `wgpu` any adapter of wgpu.
        Some(b) => c.backend == *b || c.backend.starts_with(&format!("{b}:")),
    }
}

/// Cases of exactly the claim's workload (name and version), on its backend,
/// on its GGUF file.
fn exact<'a>(claim: &Claim, runs: &'a [SourcedRun]) -> Vec<Found<'a>> {
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
fn quality_value(c: &CaseResult, metric: &str) -> Option<f64> {
    match metric {
        "kl_divergence" => c.verification.as_ref()?.mean_kl,
        "top1_agreement" => c.verification.as_ref()?.top1_agreement,
        m => c.metrics.get(&format!("{m}_median")).copied(),
    }
}

/// A measured metric with its 95 % CI where the run recorded one.
fn measured_value(c: &CaseResult, metric: &str) -> Option<(f64, f64, f64)> {
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

/// Judges `band` against `op bound`: supported when the whole band
/// satisfies it, refuted when none of it does, else cannot tell.
fn judge(op: Op, bound: f64, lo: f64, hi: f64) -> Outcome {
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

fn number(e: &Expectation) -> f64 {
    match e.value {
        Value::Number(v) => v,
        Value::Bool(b) => b as u8 as f64,
    }
}

fn cannot(
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

fn judged(
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

fn sig(x: f64) -> String {
    crate::report::table::sig3(x)
}

/// Why nothing was measured, for the reader: failed cases, or none at all.
fn missing_reason(claim: &Claim, found: &[Found]) -> String {
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

/// A projection source: the measured efficiency and the work to project.
struct Source {
    eff: Efficiency,
    work: Work,
    note: Option<String>,
    machine_id: String,
    size: SourceSize,
}

/// The source case's size against the claim's workload. Efficiency is not
/// size-free: per-op overhead weighs more on a smaller model, so on the
/// measuring VM MBU rose from 0.21 (dense-small) to 0.63 (llama-3.2-1b) in
/// q4_0 decode (scripts/projection-validation.sh; docs/claims.md, "How far
/// off is a projection?"). Another size's efficiency therefore bounds only one end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SourceSize {
    /// The claim's own workload: its efficiency, as measured.
    Same,
    /// A smaller size: a lower bound on the claim's efficiency; the upper
    /// end of the band is the target's roof at 100 %.
    Smaller,
    /// A larger size: only the upper end (the roof at 100 %) holds; the
    /// lower end is open.
    Larger,
}

fn family_of(model: &str) -> Option<capbench_workloads::models::Family> {
    capbench_workloads::models::shape(model).map(|c| c.family)
}

/// Same kind, family, weight format/dtype and batch: the workloads whose
/// efficiency may stand in for the claim's (a different size of one model).
fn same_family(a: &capbench_workloads::WorkloadSpec, b: &capbench_workloads::WorkloadSpec) -> bool {
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

fn params_of(spec: &capbench_workloads::WorkloadSpec) -> Option<u64> {
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
fn projection_source(
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
            let Ok(eff) = Efficiency::of_case(c, &r.run.run_id, &r.run.env.machine_id) else {
                continue;
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
            Ok(Source {
                note: Some(format!(
                    "{} was not measured; the efficiency of {} (same family, format and batch; {} → {} parameters) is carried over {bound}",
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
fn projected_metric(
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

fn widen((v, lo, hi): (f64, f64, f64), u: f64) -> (f64, f64, f64) {
    (v, lo * (1.0 - u), hi * (1.0 + u))
}

/// The band of a projection from another size: the fast end reaches the
/// roof at 100 % (`ideal`: the highest rate, or the shortest time); from a
/// larger size the slow end is open (rate 0, time without bound).
fn other_size_band((v, lo, hi): (f64, f64, f64), ideal: f64, size: SourceSize) -> (f64, f64, f64) {
    let rate = ideal >= v;
    let (lo, hi) = (lo.min(ideal), hi.max(ideal));
    match (size, rate) {
        (SourceSize::Larger, true) => (v, 0.0, hi),
        (SourceSize::Larger, false) => (v, lo, f64::INFINITY),
        _ => (v, lo, hi),
    }
}

/// The machine a claim without a profile is judged on: the one named by
/// `machine`, else the only one among the cases.
fn pick_machine(claim: &Claim, found: &[Found]) -> Result<String, String> {
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

struct Ctx<'a> {
    claim: &'a Claim,
    set: &'a ClaimSet,
    runs: &'a [SourcedRun],
    opts: &'a CheckOptions,
    assumptions: Vec<String>,
    projections: Vec<Projection>,
}

impl Ctx<'_> {
    fn note(&mut self, s: String) {
        if !self.assumptions.contains(&s) {
            self.assumptions.push(s);
        }
    }

    fn keep(&mut self, p: &Projection) {
        if !self.projections.contains(p) {
            self.projections.push(p.clone());
        }
    }

    /// `fits = true|false`: measured by a run of the workload under the
    /// claim's memory (the profile's budget, or `mem_cap`) — its
    /// `fit_measured` tag — else predicted from the analytic need against
    /// that memory, with the projection uncertainty as margin.
    fn fits(&mut self, e: &Expectation) -> ExpectationVerdict {
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
                Some((*f, m == crate::runner::memory::FITS))
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

    fn quality(&mut self, e: &Expectation) -> ExpectationVerdict {
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
    fn projected(
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

    fn ratio(&mut self, e: &Expectation) -> ExpectationVerdict {
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

    fn throughput(&mut self, e: &Expectation) -> ExpectationVerdict {
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
    super::ceilings::share_within_machines(&mut files);
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
