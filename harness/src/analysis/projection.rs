//! Projection of a measured case to a target machine: the efficiencies the
//! case reached here (MBU against the measured STREAM ceiling, MFU against
//! the measured GEMM ceiling) times the target's spec sheet. Every figure
//! out of here is `projected` and carries the efficiency it assumed.

use std::collections::BTreeMap;

use capbench_workloads::WorkloadSpec;
use serde::{Deserialize, Serialize};

use super::roofline::Bound;
use crate::results::{CaseResult, Ceiling, CeilingKind};

/// What a projection needs to know about the machine projected to: a
/// profile's spec sheet, or a machine's measured ceilings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Target {
    pub name: String,
    /// Where the figures come from (a spec-sheet citation, or the probe run).
    pub source: String,
    pub memory_bytes: Option<f64>,
    pub bandwidth_bytes_per_s: f64,
    /// Read-only bandwidth, where measured apart from the triad (a
    /// machine's `kernel/read` ceiling); a spec sheet gives one figure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_bandwidth_bytes_per_s: Option<f64>,
    /// Peak FLOP/s per dtype (`f32`, `f16`, `bf16`, `int8`, …); may be empty
    /// when the spec sheet gives none (then only the bandwidth roof is used).
    pub peak_flops_per_s: BTreeMap<String, f64>,
}

impl Target {
    /// A machine as its measured ceilings describe it (one backend and caps).
    pub fn from_ceilings(
        name: &str,
        ceilings: &[Ceiling],
        backend: &str,
        threads: Option<usize>,
    ) -> Option<Target> {
        let here = ceilings
            .iter()
            .filter(|c| c.backend == backend && c.threads == threads);
        // Of a bracketed pair, the lower end: the rate the machine held
        // throughout.
        let lowest = |k: CeilingKind| {
            here.clone()
                .filter(|c| c.kind == k)
                .min_by(|a, b| a.value.total_cmp(&b.value))
        };
        let read = lowest(CeilingKind::Read);
        let stream = lowest(CeilingKind::Stream).or(read)?;
        let peak_flops_per_s = here
            .filter(|c| c.kind == CeilingKind::Gemm)
            .filter_map(|c| Some((c.dtype.clone()?, c.value * 1e9)))
            .fold(BTreeMap::new(), |mut m: BTreeMap<String, f64>, (d, v)| {
                let e = m.entry(d).or_insert(v);
                *e = e.min(v);
                m
            });
        Some(Target {
            name: name.to_string(),
            source: format!(
                "measured ceilings of run {} ({}: {})",
                stream.run_id, backend, stream.case
            ),
            memory_bytes: None,
            bandwidth_bytes_per_s: stream.value * 1e9,
            read_bandwidth_bytes_per_s: read.map(|r| r.value * 1e9),
            peak_flops_per_s,
        })
    }

    /// The compute peak for a case of `dtype`: its own, else f32 — q8_0 and
    /// q4_0 compute in f32 activations (as `Profile::peak_flops_for` reads it).
    pub fn peak_for(&self, dtype: &str) -> Option<(String, f64)> {
        std::iter::once(dtype)
            .chain(std::iter::once("f32"))
            .find_map(|d| self.peak_flops_per_s.get(d).map(|v| (d.to_string(), *v)))
    }
}

/// A hardware profile's spec sheet as a projection target: its memory
/// budget (what a workload may use there), bandwidth and peaks.
impl From<&crate::profiles::Profile> for Target {
    fn from(p: &crate::profiles::Profile) -> Target {
        let bw = p
            .bandwidth_bytes_per_s
            .as_ref()
            .map(|s| format!("bandwidth: {}", s.source))
            .unwrap_or_else(|| "no sourced bandwidth".into());
        Target {
            name: p.name.clone(),
            source: format!("profile {} ({}) — {bw}", p.name, p.origin),
            memory_bytes: Some(p.memory_budget_bytes() as f64),
            bandwidth_bytes_per_s: p.bandwidth().unwrap_or(0.0),
            read_bandwidth_bytes_per_s: None,
            peak_flops_per_s: p
                .peak_flops_per_s
                .iter()
                .map(|(d, s)| (d.clone(), s.value))
                .collect(),
        }
    }
}

/// The analytic work of one timed iteration and the headline it yields.
#[derive(Debug, Clone, PartialEq)]
pub struct Work {
    pub flops: f64,
    pub bytes: f64,
    pub headline_metric: String,
    pub headline_per_iter: f64,
}

impl Work {
    /// From a workload name alone; `None` where the counts need the model
    /// file (`decode/gguf/…`) or the workload has none.
    pub fn of_spec(spec: &WorkloadSpec) -> Option<Work> {
        let w = match &spec.params {
            capbench_workloads::spec::Params::Train { .. }
            | capbench_workloads::spec::Params::TrainQuality { .. }
            | capbench_workloads::spec::Params::Decode { .. } => {
                capbench_workloads::cost::work::of(spec)
            }
            _ => capbench_workloads::WorkPerIter::gflops(
                spec.flops_per_iter(),
                spec.bytes_per_iter(),
            ),
        };
        (w.flops > 0.0 && w.bytes > 0.0 && w.headline_per_iter > 0.0).then(|| Work {
            flops: w.flops,
            bytes: w.bytes,
            headline_metric: w.headline_metric.to_string(),
            headline_per_iter: w.headline_per_iter,
        })
    }

    /// From a measured case (the worker's counts, e.g. a GGUF file's real
    /// tensor sizes).
    pub fn of_case(c: &CaseResult) -> Option<Work> {
        let h = c.headline.as_ref()?;
        let wall = c.metrics.get("wall_s_median")?;
        Some(Work {
            flops: *c.metrics.get("flops_per_iter")?,
            bytes: *c.metrics.get("bytes_per_iter")?,
            headline_metric: h.metric.clone(),
            headline_per_iter: h.value * wall,
        })
    }
}

/// The efficiencies a measured case reached against its machine's
/// ceilings, with 95 % intervals carried over from the headline's CI.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Efficiency {
    pub case: String,
    pub run_id: String,
    pub machine_id: String,
    /// The case's weight format or dtype (`quant` tag).
    pub dtype: String,
    pub mbu: Option<[f64; 3]>,
    pub mfu: Option<[f64; 3]>,
    /// The bound on the measuring machine's roofline.
    pub bound_here: Option<Bound>,
    /// The bandwidth roof MBU was taken against: `read` or `stream`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mbu_roof: Option<String>,
    /// How far the bracketing ceilings drifted apart during the run
    /// (relative, 0 when they agreed within their CIs): the projected band
    /// is widened by it.
    #[serde(default)]
    pub ceiling_drift_rel: f64,
    /// The engine that measured it: `capbench` (candle, the WGSL engine),
    /// or an engine backend (`llamacpp`, `torch`).
    #[serde(default = "own_engine")]
    pub engine: String,
}

fn own_engine() -> String {
    OWN_ENGINE.into()
}

/// capbench's own engine: candle and the WGSL engine.
pub const OWN_ENGINE: &str = "capbench";
/// Engines other than capbench's own that a case or claim may name.
pub const OTHER_ENGINES: &[&str] = &["llamacpp", "torch"];

/// The engine a case ran on: its `engine` tag, else an engine backend's
/// name, else capbench's own.
pub fn engine_of(c: &CaseResult) -> String {
    if let Some(e) = c.tags.get("engine") {
        return e.clone();
    }
    let family = c.backend.split([':', '+']).next().unwrap_or("");
    if OTHER_ENGINES.contains(&family) {
        family.to_string()
    } else {
        OWN_ENGINE.to_string()
    }
}

impl Efficiency {
    /// `[point, low, high]` of MBU and MFU; an error names what is missing.
    pub fn of_case(c: &CaseResult, run_id: &str, machine_id: &str) -> Result<Efficiency, String> {
        let h = c
            .headline
            .as_ref()
            .ok_or_else(|| format!("{} has no measured headline", c.id))?;
        // Utilisation scales with the headline: the CI carries over.
        let rel = |v: f64| {
            [
                v,
                v * h.ci95_low / h.value.max(f64::MIN_POSITIVE),
                v * h.ci95_high / h.value.max(f64::MIN_POSITIVE),
            ]
        };
        if let Some(e) = c.tags.get("measurement_error") {
            return Err(format!(
                "{} (run {run_id}) is not projected from: {e}",
                c.id
            ));
        }
        let mbu = c.metrics.get("mbu").map(|v| rel(*v));
        let mfu = c.metrics.get("mfu").map(|v| rel(*v));
        for (name, v) in [("MBU", mbu), ("MFU", mfu)] {
            if let Some(v) = v.filter(|v| v[0] > 1.0 + 1e-9) {
                return Err(format!(
                    "{} (run {run_id}) has {name} {:.3} > 1, a measurement error (faster than the measured roof), never projected from",
                    c.id, v[0]
                ));
            }
        }
        if mbu.is_none() && mfu.is_none() {
            return Err(format!(
                "{} (run {run_id}) has no MFU or MBU: its machine's ceilings were not measured — run `capbench probe` there and pass that run folder too",
                c.id
            ));
        }
        Ok(Efficiency {
            case: c.id.clone(),
            run_id: run_id.to_string(),
            machine_id: machine_id.to_string(),
            dtype: c.tags.get("quant").cloned().unwrap_or_else(|| "f32".into()),
            mbu,
            mfu,
            bound_here: c.tags.get("roofline_bound").and_then(|b| Bound::parse(b)),
            mbu_roof: c.tags.get("ceiling_bandwidth_kind").cloned(),
            ceiling_drift_rel: c.metrics.get("ceiling_drift_rel").copied().unwrap_or(0.0),
            engine: engine_of(c),
        })
    }
}

/// One projected figure. Never mixed with measured ones: `label` is always
/// `projected`, and the assumption travels with the number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Projection {
    pub label: String,
    pub target: String,
    pub target_source: String,
    pub metric: String,
    /// The headline on the target, with the interval the source's 95 % CI
    /// of the efficiency implies (projection error not included).
    pub value: f64,
    pub ci95_low: f64,
    pub ci95_high: f64,
    pub wall_s_per_iter: f64,
    /// The roof that binds on the target.
    pub bound: Bound,
    /// `mbu` or `mfu`: the efficiency of the binding roof, and its value.
    pub efficiency_kind: String,
    pub efficiency_assumed: f64,
    pub from_case: String,
    pub from_run: String,
    /// The target figure used: bytes/s (memory) or FLOP/s (compute).
    pub target_peak_used: f64,
    /// The dtype of the compute peak used (compute-bound only).
    pub target_dtype_used: Option<String>,
    pub assumption: String,
}

/// One roof of the target: its bound, the efficiency assumed (point, low,
/// high), the work per iteration (bytes or FLOPs), the target rate for it,
/// and the GEMM dtype of a compute roof.
type Roof = (Bound, [f64; 3], f64, f64, Option<String>);

/// Projects `work` onto `target`. The efficiency of the roof that bound the
/// source case here (MBU when memory-bound, MFU when compute-bound) is
/// carried to the same roof of the target; the target's other roof is taken
/// at 100 % of its peak, as a limit no efficiency can beat:
/// time = max(amount / (efficiency × rate), other amount / other peak).
/// Without a known bound, each roof with an efficiency is used at its own.
/// On the measuring machine with its own ceilings this returns the measured
/// time exactly, so any error comes from carrying the efficiency over.
pub fn project(eff: &Efficiency, work: &Work, target: &Target) -> Result<Projection, String> {
    let ideal = [1.0; 3];
    let use_mbu = eff.bound_here != Some(Bound::Compute);
    let use_mfu = eff.bound_here != Some(Bound::Memory);
    let mut roofs: Vec<Roof> = vec![];
    // MBU against the read roof is carried to the target's read bandwidth
    // where it lists one apart (a measured machine), else its one figure.
    let bandwidth = match (eff.mbu_roof.as_deref(), target.read_bandwidth_bytes_per_s) {
        (Some("read"), Some(r)) => r,
        _ => target.bandwidth_bytes_per_s,
    };
    if bandwidth > 0.0 {
        let e = match eff.mbu.filter(|m| m[0] > 0.0) {
            Some(m) if use_mbu => Some(m),
            _ if eff.bound_here == Some(Bound::Compute) => Some(ideal),
            _ => None,
        };
        if let Some(e) = e {
            roofs.push((Bound::Memory, e, work.bytes, bandwidth, None));
        }
    }
    if let Some((dtype, peak)) = target.peak_for(&eff.dtype) {
        let e = match eff.mfu.filter(|m| m[0] > 0.0) {
            Some(m) if use_mfu => Some(m),
            _ if eff.bound_here == Some(Bound::Memory) => Some(ideal),
            _ => None,
        };
        if let Some(e) = e {
            roofs.push((Bound::Compute, e, work.flops, peak, Some(dtype)));
        }
    }
    // The measured roof must be among them: a limit alone projects nothing.
    if !roofs.iter().any(|r| r.1 != ideal) {
        roofs.clear();
    }
    // time of one roof at efficiency e
    let time = |e: f64, amount: f64, rate: f64| amount / (e * rate);
    let binding = roofs
        .iter()
        .max_by(|a, b| time(a.1[0], a.2, a.3).total_cmp(&time(b.1[0], b.2, b.3)))
        .ok_or_else(|| {
            format!(
                "cannot project {} onto {}: it needs MBU and the target's bandwidth, or MFU and a compute peak for {}",
                eff.case, target.name, eff.dtype
            )
        })?;
    let (bound, e, amount, rate, dtype) = binding.clone();
    let wall = time(e[0], amount, rate);
    // Slowest and fastest ends: the efficiency's CI bounds (higher
    // efficiency → shorter time → higher rate).
    let wall_at = |k: usize| {
        roofs
            .iter()
            .map(|r| time(r.1[k], r.2, r.3))
            .fold(0.0, f64::max)
    };
    let value = work.headline_per_iter / wall;
    // Ceilings that drifted apart during the run: the efficiency is known
    // no better than that drift, whichever end it was taken against.
    let drift = eff.ceiling_drift_rel.max(0.0);
    let (lo, hi) = (
        work.headline_per_iter / wall_at(1) * (1.0 - drift).max(0.0),
        work.headline_per_iter / wall_at(2) * (1.0 + drift),
    );
    let kind = match bound {
        Bound::Memory => "mbu",
        Bound::Compute => "mfu",
    };
    let peak_words = match (&bound, &dtype) {
        (Bound::Memory, _) => format!("{:.1} GB/s", rate / 1e9),
        (Bound::Compute, Some(d)) => format!("{:.2} TFLOP/s {d}", rate / 1e12),
        (Bound::Compute, None) => format!("{:.2} TFLOP/s", rate / 1e12),
    };
    let roof_words = match (bound, eff.mbu_roof.as_deref()) {
        (Bound::Memory, Some(r)) => format!(", MBU taken against the {r} ceiling"),
        _ => String::new(),
    };
    let what = if e == ideal {
        format!(
            "{} is {}-bound at 100 % of its {peak_words} — an optimistic limit: {} was bound by the other roof here (run {})",
            target.name,
            bound.as_str(),
            eff.case,
            eff.run_id
        )
    } else {
        format!(
            "{} reaches {} = {:.3}, as {} did in run {} ({}-bound on {}: {peak_words}{roof_words})",
            target.name,
            kind.to_uppercase(),
            e[0],
            eff.case,
            eff.run_id,
            bound.as_str(),
            target.name
        )
    };
    Ok(Projection {
        label: "projected".into(),
        target: target.name.clone(),
        target_source: target.source.clone(),
        metric: work.headline_metric.clone(),
        value,
        ci95_low: lo.min(value),
        ci95_high: hi.max(value),
        wall_s_per_iter: wall,
        bound,
        efficiency_kind: kind.into(),
        efficiency_assumed: e[0],
        from_case: eff.case.clone(),
        from_run: eff.run_id.clone(),
        target_peak_used: rate,
        target_dtype_used: dtype,
        assumption: format!("{what}{}{}", engine_words(eff), drift_words(eff)),
    })
}

/// Whose efficiency a projection carries: capbench's own engine unless the
/// source was measured on another.
fn engine_words(eff: &Efficiency) -> String {
    if eff.engine == OWN_ENGINE {
        " — the efficiency of capbench's own engine (candle/WGSL): the projection is for that engine; llama.cpp or PyTorch may reach another (name one with `engine` in the claim)".into()
    } else {
        format!(
            " — the efficiency of the {} engine, measured on it",
            eff.engine
        )
    }
}

fn drift_words(eff: &Efficiency) -> String {
    if eff.ceiling_drift_rel > 0.0 {
        format!(
            "; the ceilings bracketing {} drifted {:.0} % apart during its run (ceiling_drift): the band is widened by that much",
            eff.case,
            eff.ceiling_drift_rel * 100.0
        )
    } else {
        String::new()
    }
}

/// The shortest time `work` can take on `target`: each roof it has a
/// figure for at 100 % of its peak (the slowest binds). `None` when the
/// target lists neither a bandwidth nor a compute peak for `dtype`.
pub fn roof_time(work: &Work, target: &Target, dtype: &str) -> Option<f64> {
    let memory =
        (target.bandwidth_bytes_per_s > 0.0).then(|| work.bytes / target.bandwidth_bytes_per_s);
    let compute = target.peak_for(dtype).map(|(_, peak)| work.flops / peak);
    match (memory, compute) {
        (None, None) => None,
        (m, c) => Some(m.unwrap_or(0.0).max(c.unwrap_or(0.0))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(bw_gb: f64, peak_tf: &[(&str, f64)]) -> Target {
        Target {
            name: "t".into(),
            source: "test".into(),
            memory_bytes: Some(8e9),
            bandwidth_bytes_per_s: bw_gb * 1e9,
            read_bandwidth_bytes_per_s: None,
            peak_flops_per_s: peak_tf
                .iter()
                .map(|(d, v)| (d.to_string(), v * 1e12))
                .collect(),
        }
    }

    fn eff(mbu: Option<f64>, mfu: Option<f64>, dtype: &str) -> Efficiency {
        Efficiency {
            case: "c".into(),
            run_id: "r".into(),
            machine_id: "m".into(),
            dtype: dtype.into(),
            mbu: mbu.map(|v| [v, v * 0.9, v * 1.1]),
            mfu: mfu.map(|v| [v, v * 0.9, v * 1.1]),
            bound_here: None,
            mbu_roof: None,
            ceiling_drift_rel: 0.0,
            engine: OWN_ENGINE.into(),
        }
    }

    #[test]
    fn memory_bound_decode_scales_with_bandwidth_times_mbu() {
        // 3.8 GB of weights per token at 60 % of 100 GB/s → 15.79 tok/s.
        let w = Work {
            flops: 2.0 * 6.7e9,
            bytes: 3.8e9,
            headline_metric: "tokens_per_s".into(),
            headline_per_iter: 1.0,
        };
        let p = project(&eff(Some(0.6), Some(0.3), "q4_0"), &w, &target(100.0, &[])).unwrap();
        assert_eq!(p.bound, Bound::Memory);
        assert_eq!(p.efficiency_kind, "mbu");
        assert!((p.value - 0.6 * 100e9 / 3.8e9).abs() < 1e-9, "{p:?}");
        assert_eq!(p.label, "projected");
        // The efficiency's ±10 % becomes the projected interval.
        assert!((p.ci95_low - 0.54 * 100e9 / 3.8e9).abs() < 1e-9);
        assert!((p.ci95_high - 0.66 * 100e9 / 3.8e9).abs() < 1e-9);
        assert!(p.assumption.contains("MBU = 0.600"), "{}", p.assumption);
    }

    #[test]
    fn the_slower_roof_binds() {
        // 1 TFLOP and 1 GB per step: compute at 50 % of 10 TF/s = 0.2 s,
        // memory at 50 % of 1000 GB/s = 0.002 s → compute-bound, 5 steps/s.
        let w = Work {
            flops: 1e12,
            bytes: 1e9,
            headline_metric: "steps_per_s".into(),
            headline_per_iter: 1.0,
        };
        let t = target(1000.0, &[("f32", 10.0), ("bf16", 20.0)]);
        let p = project(&eff(Some(0.5), Some(0.5), "f32"), &w, &t).unwrap();
        assert_eq!(p.bound, Bound::Compute);
        // Compute-bound here: MFU carried over, memory taken at its peak.
        let mut compute = eff(Some(0.001), Some(0.5), "f32");
        compute.bound_here = Some(Bound::Compute);
        let p = project(&compute, &w, &t).unwrap();
        assert_eq!(p.bound, Bound::Compute);
        assert!((p.wall_s_per_iter - 0.2).abs() < 1e-12);
        assert!((p.value - 5.0).abs() < 1e-9);
        // bf16 uses its own peak.
        let p = project(&eff(Some(0.5), Some(0.5), "bf16"), &w, &t).unwrap();
        assert!((p.value - 10.0).abs() < 1e-9);
        assert_eq!(p.target_dtype_used.as_deref(), Some("bf16"));
    }

    #[test]
    fn quantized_formats_use_the_f32_peak() {
        let t = target(1.0, &[("f32", 1.0), ("f16", 2.0)]);
        assert_eq!(t.peak_for("q4_0").unwrap().0, "f32");
        assert_eq!(t.peak_for("f16").unwrap().0, "f16");
        assert_eq!(t.peak_for("bf16").unwrap().0, "f32");
        let t = target(1.0, &[]);
        assert!(t.peak_for("f32").is_none());
    }

    #[test]
    fn a_built_in_profile_is_a_target() {
        let p = crate::profiles::find("t4-16gb").unwrap();
        let t = Target::from(&p);
        assert_eq!(t.bandwidth_bytes_per_s, 320e9);
        assert_eq!(t.peak_flops_per_s["f16"], 65e12);
        assert_eq!(t.memory_bytes, Some(p.memory_budget_bytes() as f64));
    }

    #[test]
    fn projecting_onto_the_measuring_machine_returns_the_measurement() {
        use crate::analysis::ceilings::{apply, from_cases};
        use crate::analysis::fixtures::case;
        let mut cases = vec![
            case("kernel/gemm-f32-256", "cpu", vec![vec![1e-3; 5]; 2]),
            case("kernel/stream-1000", "cpu", vec![vec![1e-6; 5]; 2]),
            case("kernel/attention-64", "cpu", vec![vec![2e-3; 5]; 2]),
        ];
        let cl = from_cases(&cases, "r");
        apply(&mut cases, &cl);
        let t = Target::from_ceilings("here", &cl, "cpu", None).unwrap();
        let e = Efficiency::of_case(&cases[2], "r", "m").unwrap();
        let w = Work::of_case(&cases[2]).unwrap();
        let p = project(&e, &w, &t).unwrap();
        let measured = cases[2].headline.as_ref().unwrap().value;
        assert!(
            (p.value / measured - 1.0).abs() < 1e-9,
            "{p:?} vs {measured}"
        );
    }

    #[test]
    fn the_other_roof_at_its_peak_limits_the_projection() {
        // Memory-bound here at MBU 0.5; on a target with a tiny compute
        // peak the compute roof at 100 % binds: 1e12 FLOP / 1e9 FLOP/s.
        let w = Work {
            flops: 1e12,
            bytes: 1e9,
            headline_metric: "x_per_s".into(),
            headline_per_iter: 1.0,
        };
        let mut e = eff(Some(0.5), Some(0.9), "f32");
        e.bound_here = Some(Bound::Memory);
        let p = project(&e, &w, &target(1000.0, &[("f32", 0.001)])).unwrap();
        assert_eq!(p.bound, Bound::Compute);
        assert!((p.wall_s_per_iter - 1000.0).abs() < 1e-9);
        assert!(p.assumption.contains("optimistic"), "{}", p.assumption);
    }

    #[test]
    fn no_efficiency_or_no_target_figure_is_an_error_not_a_number() {
        let w = Work {
            flops: 1.0,
            bytes: 1.0,
            headline_metric: "x".into(),
            headline_per_iter: 1.0,
        };
        let e = project(&eff(None, Some(0.5), "f32"), &w, &target(1.0, &[])).unwrap_err();
        assert!(e.contains("compute peak"), "{e}");
    }

    fn decode_work() -> Work {
        Work {
            flops: 2.0 * 6.7e9,
            bytes: 3.8e9,
            headline_metric: "tokens_per_s".into(),
            headline_per_iter: 1.0,
        }
    }

    #[test]
    fn drifting_ceilings_widen_the_band_and_the_engine_is_named() {
        let mut e = eff(Some(0.6), None, "q4_0");
        let t = target(100.0, &[]);
        let p0 = project(&e, &decode_work(), &t).unwrap();
        assert!(
            p0.assumption.contains("capbench's own engine"),
            "{}",
            p0.assumption
        );
        e.ceiling_drift_rel = 0.25;
        e.engine = "llamacpp".into();
        let p = project(&e, &decode_work(), &t).unwrap();
        assert_eq!(p.value, p0.value);
        assert!((p.ci95_low - p0.ci95_low * 0.75).abs() < 1e-9);
        assert!((p.ci95_high - p0.ci95_high * 1.25).abs() < 1e-9);
        assert!(p.assumption.contains("llamacpp engine"), "{}", p.assumption);
        assert!(p.assumption.contains("drifted 25 %"), "{}", p.assumption);
    }

    #[test]
    fn mbu_against_the_read_roof_goes_to_the_targets_read_bandwidth() {
        let mut e = eff(Some(0.5), None, "q4_0");
        e.mbu_roof = Some("read".into());
        let mut t = target(100.0, &[]);
        t.read_bandwidth_bytes_per_s = Some(200e9);
        let p = project(&e, &decode_work(), &t).unwrap();
        assert_eq!(p.target_peak_used, 200e9);
        assert!(p.assumption.contains("read ceiling"), "{}", p.assumption);
        // The triad's MBU keeps the triad figure.
        e.mbu_roof = Some("stream".into());
        assert_eq!(
            project(&e, &decode_work(), &t).unwrap().target_peak_used,
            100e9
        );
    }

    #[test]
    fn a_case_above_its_roof_is_never_projected_from() {
        use crate::analysis::fixtures::case;
        let mut c = case("decode/dense-tiny/q4_0", "cpu", vec![vec![1e-3; 5]; 2]);
        c.metrics.insert("mbu".into(), 1.4);
        let err = Efficiency::of_case(&c, "r", "m").unwrap_err();
        assert!(err.contains("MBU 1.400 > 1"), "{err}");
        c.metrics.insert("mbu".into(), 0.4);
        assert!(Efficiency::of_case(&c, "r", "m").is_ok());
        c.tags
            .insert("measurement_error".into(), "MFU 2.0 > 1".into());
        assert!(Efficiency::of_case(&c, "r", "m").is_err());
    }
}
