//! A machine's measured ceilings — the best STREAM triad and read GB/s and
//! GEMM GFLOP/s per dtype of each backend and caps — and the MFU, MBU and
//! roofline bound of every case against the ceiling measured nearest to it
//! in time (Williams, Waterman & Patterson, CACM 2009). A bracketed run
//! measures each ceiling before and after its other cases; a case whose two
//! ends disagree beyond their CIs is flagged `ceiling_drift`.

use std::collections::BTreeMap;

use capbench_workloads::cost::llc::{self, ArraySizing};
use capbench_workloads::spec::Params;

use super::roofline;
use crate::results::{CaseResult, RunFile, Status, mid_time_s};
pub use crate::results::{Ceiling, CeilingKind};

fn gemm_dtype(c: &CaseResult) -> Option<String> {
    match &c.workload.spec.params {
        Params::Gemm { dtype, .. } => Some(dtype.as_str().to_string()),
        _ => None,
    }
}

/// The ceiling a case of this workload measures, and its metric.
pub fn ceiling_kind(workload: &str) -> Option<(CeilingKind, &'static str)> {
    if workload.starts_with("kernel/gemm-") {
        Some((CeilingKind::Gemm, "gflops_per_s"))
    } else if workload.starts_with("kernel/stream-") {
        Some((CeilingKind::Stream, "gbytes_per_s"))
    } else if workload.starts_with("kernel/read-") {
        Some((CeilingKind::Read, "gbytes_per_s"))
    } else {
        None
    }
}

/// How a bandwidth ceiling's arrays were sized: as planned from the LLC
/// (`kernel/<stream|read>-llc`), else the size the suite named, judged
/// against this machine's LLC.
fn sizing_of(c: &CaseResult, planned: &BTreeMap<String, ArraySizing>) -> Option<ArraySizing> {
    // The rule is about the host's cache; a device's buffers are not in it.
    if c.backend != "cpu" {
        return None;
    }
    if let Some(s) = planned.get(&c.workload.name) {
        return Some(s.clone());
    }
    match &c.workload.spec.params {
        Params::Stream { elems } => Some(llc::judge(*elems as u64 * 4, 3, llc::llc_bytes())),
        Params::Read { bytes } => Some(llc::judge(*bytes as u64, 1, llc::llc_bytes())),
        _ => None,
    }
}

type Key = (CeilingKind, String, Option<usize>, Option<String>);

fn best_of(
    cases: &[CaseResult],
    run_id: &str,
    bracket: Option<&str>,
    planned: &BTreeMap<String, ArraySizing>,
) -> BTreeMap<Key, Ceiling> {
    let mut best: BTreeMap<Key, Ceiling> = BTreeMap::new();
    for c in cases.iter().filter(|c| c.status == Status::Ok) {
        let Some((kind, metric)) = ceiling_kind(&c.workload.name) else {
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
            dtype: (kind == CeilingKind::Gemm).then(|| gemm_dtype(c)).flatten(),
            value,
            ci95_low: ci("low"),
            ci95_high: ci("high"),
            case: c.id.clone(),
            run_id: run_id.to_string(),
            sizing: sizing_of(c, planned),
            measured_at: Some(c.started_at.clone()),
            elapsed_s: c.elapsed_s,
            bracket: bracket.map(str::to_string),
        };
        let e = best.entry(ceiling.key()).or_insert_with(|| ceiling.clone());
        // Arrays that meet STREAM's rule beat any that sit in cache, however
        // fast those were; among equals the fastest wins.
        let met = |c: &Ceiling| c.sizing.as_ref().is_none_or(|s| s.rule_met);
        if (met(&ceiling), ceiling.value) > (met(e), e.value) {
            *e = ceiling;
        }
    }
    best
}

/// The best ok GEMM (per dtype), STREAM and read case of each backend ×
/// caps, sized by this machine's LLC.
pub fn from_cases(cases: &[CaseResult], run_id: &str) -> Vec<Ceiling> {
    from_run(cases, &[], run_id, &BTreeMap::new())
}

/// The run's ceilings: the best of its own cases (`before` when bracketed)
/// and of the cases measured again after the others (`after`).
pub fn from_run(
    cases: &[CaseResult],
    after: &[CaseResult],
    run_id: &str,
    planned: &BTreeMap<String, ArraySizing>,
) -> Vec<Ceiling> {
    let bracketed = !after.is_empty();
    let mut out: Vec<Ceiling> = best_of(cases, run_id, bracketed.then_some("before"), planned)
        .into_values()
        .collect();
    out.extend(best_of(after, run_id, Some("after"), planned).into_values());
    out
}

/// The ceiling cases to measure again once a run's other cases are done:
/// the one that set each ceiling. Empty when the run holds nothing else
/// (a lone kernel needs no bracket).
pub fn bracket_cases(cases: &[CaseResult]) -> Vec<String> {
    if cases.len() < 2 {
        return vec![];
    }
    best_of(cases, "", None, &BTreeMap::new())
        .into_values()
        .map(|c| c.case)
        .collect()
}

/// Whether a case's bandwidth roof is the read kernel: decode and prefill
/// stream their weights read-only; everything else keeps the triad.
fn reads_only(c: &CaseResult) -> bool {
    matches!(c.kind.as_str(), "decode" | "prefill") || c.workload.name.starts_with("kernel/read-")
}

/// The ceilings of one roof that apply to a case (same backend and caps).
fn candidates<'a>(
    c: &CaseResult,
    ceilings: &'a [Ceiling],
    kind: CeilingKind,
    dtype: Option<&str>,
) -> Vec<&'a Ceiling> {
    ceilings
        .iter()
        .filter(|cl| {
            cl.kind == kind
                && cl.backend == c.backend
                && cl.threads == c.caps.threads
                && (dtype.is_none() || cl.dtype.as_deref() == dtype)
        })
        .collect()
}

/// The GEMM ceilings a case's utilisation is taken against: its own dtype
/// when measured (f32/f16/bf16 training and GEMM), else f32 — quantized
/// decode has no GEMM of its format, and f32 is the conventional reference.
fn gemm_ceilings<'a>(c: &CaseResult, ceilings: &'a [Ceiling]) -> Vec<&'a Ceiling> {
    let own = c
        .tags
        .get("quant")
        .map(|d| candidates(c, ceilings, CeilingKind::Gemm, Some(d)))
        .unwrap_or_default();
    if own.is_empty() {
        candidates(c, ceilings, CeilingKind::Gemm, Some("f32"))
    } else {
        own
    }
}

/// The bandwidth ceilings of a case: read for decode (the triad when no
/// read ceiling was measured), the triad for the rest.
fn bandwidth_ceilings<'a>(c: &CaseResult, ceilings: &'a [Ceiling]) -> Vec<&'a Ceiling> {
    let read = candidates(c, ceilings, CeilingKind::Read, None);
    if reads_only(c) && !read.is_empty() {
        read
    } else {
        candidates(c, ceilings, CeilingKind::Stream, None)
    }
}

/// The candidate measured nearest in time to the case (without times, the
/// one not measured after).
fn nearest<'a>(c: &CaseResult, cands: &[&'a Ceiling]) -> Option<&'a Ceiling> {
    let t = mid_time_s(&c.started_at, c.elapsed_s);
    let dist = |cl: &Ceiling| match (t, cl.mid_time_s()) {
        (Some(t), Some(m)) => (t - m).abs(),
        _ if cl.bracket.as_deref() == Some("after") => f64::MAX,
        _ => f64::MAX / 2.0,
    };
    cands
        .iter()
        .copied()
        .min_by(|a, b| dist(a).total_cmp(&dist(b)))
}

/// The drift between a bracket's two ends, relative to `used`, when their
/// 95 % intervals do not overlap: `(relative drift, words)`.
pub fn drift(cands: &[&Ceiling], used: &Ceiling) -> Option<(f64, String)> {
    let before = cands
        .iter()
        .find(|c| c.bracket.as_deref() == Some("before"))?;
    let after = cands
        .iter()
        .find(|c| c.bracket.as_deref() == Some("after"))?;
    let apart = before.ci95_high < after.ci95_low || after.ci95_high < before.ci95_low;
    let rel = (before.value - after.value).abs() / used.value.max(f64::MIN_POSITIVE);
    let unit = if used.kind == CeilingKind::Gemm {
        "GFLOP/s"
    } else {
        "GB/s"
    };
    apart.then(|| {
        (
            rel,
            format!(
                "{} ceiling {:.3} {unit} [{:.3}, {:.3}] before vs {:.3} [{:.3}, {:.3}] after ({}): {:.0} % apart, beyond both CIs",
                used.kind.as_str(),
                before.value,
                before.ci95_low,
                before.ci95_high,
                after.value,
                after.ci95_low,
                after.ci95_high,
                used.case,
                rel * 100.0
            ),
        )
    })
}

/// Writes MFU, MBU, the arithmetic intensity and the roofline bound of every
/// ok case from `ceilings` (same backend and caps; of each roof, the one
/// measured nearest in time). Keys: `mfu`, `mbu`, `ceiling_gflops_per_s`,
/// `ceiling_gbytes_per_s`, `arithmetic_intensity_flops_per_byte`,
/// `ridge_flops_per_byte`, `roofline_attainable_gflops_per_s`,
/// `ceiling_drift_rel`; tags `roofline_bound` (`memory`/`compute`),
/// `ceiling_gemm_dtype`, `ceiling_bandwidth_kind` (`read`/`stream`),
/// `ceiling_bracket`, `ceiling_drift`, `ceilings_run_id` and
/// `measurement_error` (MBU or MFU above 1: never projected from).
pub fn apply(cases: &mut [CaseResult], ceilings: &[Ceiling]) {
    for c in cases.iter_mut().filter(|c| c.status == Status::Ok) {
        let flops = c.metrics.get("flops_per_iter").copied().unwrap_or(0.0);
        let bytes = c.metrics.get("bytes_per_iter").copied().unwrap_or(0.0);
        let ai = roofline::arithmetic_intensity(flops, bytes);
        if let Some(ai) = ai {
            c.metrics
                .insert("arithmetic_intensity_flops_per_byte".into(), ai);
        }
        let gemms = gemm_ceilings(c, ceilings);
        let bws = bandwidth_ceilings(c, ceilings);
        let peak = nearest(c, &gemms).cloned();
        let bw = nearest(c, &bws).cloned();
        let mut errors = vec![];
        let mut drifts = vec![];
        if let (Some(p), Some(v)) = (&peak, c.metrics.get("gflops_per_s").copied()) {
            let mfu = v / p.value;
            c.metrics.insert("mfu".into(), mfu);
            c.metrics.insert("ceiling_gflops_per_s".into(), p.value);
            c.tags.insert(
                "ceiling_gemm_dtype".into(),
                p.dtype.clone().unwrap_or_default(),
            );
            c.tags.insert("ceilings_run_id".into(), p.run_id.clone());
            if mfu > 1.0 + 1e-9 {
                errors.push(format!("MFU {mfu:.3} > 1 against {}", p.case));
            }
            drifts.extend(drift(&gemms, p));
        }
        if let (Some(b), Some(v)) = (&bw, c.metrics.get("gbytes_per_s").copied()) {
            let mbu = v / b.value;
            c.metrics.insert("mbu".into(), mbu);
            c.metrics.insert("ceiling_gbytes_per_s".into(), b.value);
            c.tags
                .insert("ceiling_bandwidth_kind".into(), b.kind.as_str().into());
            c.tags.insert("ceilings_run_id".into(), b.run_id.clone());
            if let Some(br) = &b.bracket {
                c.tags.insert("ceiling_bracket".into(), br.clone());
            }
            if mbu > 1.0 + 1e-9 {
                errors.push(format!("MBU {mbu:.3} > 1 against {}", b.case));
            }
            drifts.extend(drift(&bws, b));
        }
        if !errors.is_empty() {
            c.tags.insert(
                "measurement_error".into(),
                format!(
                    "{}: faster than the measured roof — the bytes or FLOPs counted are not what the hardware moved (cache reuse), or the ceiling was measured low; not a result, never projected from",
                    errors.join("; ")
                ),
            );
        }
        if let Some(worst) = drifts.iter().map(|d| d.0).reduce(f64::max) {
            c.metrics.insert("ceiling_drift_rel".into(), worst);
            let words: Vec<String> = drifts.into_iter().map(|d| d.1).collect();
            c.tags.insert("ceiling_drift".into(), words.join("; "));
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
/// kind and dtype) are added — both ends of a bracket — and utilisation
/// recomputed for cases that had none. Returns how many ceilings each run
/// borrowed.
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
        let own: Vec<Key> = run.ceilings.iter().map(Ceiling::key).collect();
        let mut added = false;
        for (machine, c) in &all {
            if *machine != run.env.machine_id || own.contains(&c.key()) || run.ceilings.contains(c)
            {
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

    fn at(mut c: CaseResult, started_at: &str) -> CaseResult {
        c.started_at = started_at.into();
        c
    }

    #[test]
    fn decode_takes_the_read_roof_and_the_rest_the_triad() {
        let mut cases = vec![
            // 1 MiB in 100 µs → 10.5 GB/s read; 12 MB in 1 ms → 12 GB/s triad.
            case("kernel/read-1M", "cpu", vec![vec![1e-4; 5]; 2]),
            case("kernel/stream-1M", "cpu", vec![vec![1e-3 * 1.048576; 5]; 2]),
            case("kernel/attention-64", "cpu", vec![vec![2e-3; 5]; 2]),
            case("decode/dense-tiny/q4_0", "cpu", vec![vec![1e-2; 5]; 2]),
        ];
        let cl = from_cases(&cases, "r");
        assert_eq!(cl.len(), 2, "{cl:?}");
        let read = cl.iter().find(|c| c.kind == CeilingKind::Read).unwrap();
        // Sized against this machine's LLC, whatever it is: the rule is said.
        assert!(
            read.sizing
                .as_ref()
                .is_some_and(|s| s.arrays == 1 && !s.rule.is_empty())
        );
        apply(&mut cases, &cl);
        assert_eq!(cases[3].tags["ceiling_bandwidth_kind"], "read");
        assert_eq!(cases[3].metrics["ceiling_gbytes_per_s"], read.value);
        assert_eq!(cases[2].tags["ceiling_bandwidth_kind"], "stream");
        // Without a read ceiling decode falls back to the triad.
        let stream_only: Vec<Ceiling> = cl
            .iter()
            .filter(|c| c.kind == CeilingKind::Stream)
            .cloned()
            .collect();
        apply(&mut cases[3..], &stream_only);
        assert_eq!(cases[3].tags["ceiling_bandwidth_kind"], "stream");
    }

    #[test]
    fn each_case_takes_the_nearest_end_of_the_bracket_and_drift_is_flagged() {
        // The read ceiling: 10.5 GB/s at 10:00, 5.2 GB/s at 10:10.
        let before = at(
            case("kernel/read-1M", "cpu", vec![vec![1e-4; 5]; 2]),
            "2026-01-01T10:00:00Z",
        );
        let after = at(
            case("kernel/read-1M", "cpu", vec![vec![2e-4; 5]; 2]),
            "2026-01-01T10:10:00Z",
        );
        let early = at(
            case("decode/dense-tiny/q4_0", "cpu", vec![vec![1e-2; 5]; 2]),
            "2026-01-01T10:01:00Z",
        );
        let late = at(early.clone(), "2026-01-01T10:09:00Z");
        let mut cases = vec![before.clone(), early, late];
        assert_eq!(
            bracket_cases(&cases),
            vec!["kernel/read-1M@cpu".to_string()]
        );
        let cl = from_run(&cases, &[after], "r", &BTreeMap::new());
        assert_eq!(cl.len(), 2);
        apply(&mut cases, &cl);
        assert_eq!(cases[1].tags["ceiling_bracket"], "before");
        assert_eq!(cases[2].tags["ceiling_bracket"], "after");
        // Twice the MBU against the slower, later end.
        let (e, l) = (cases[1].metrics["mbu"], cases[2].metrics["mbu"]);
        assert!((l / e - 2.0).abs() < 1e-9, "{e} {l}");
        // Half the bandwidth gone, beyond both (tight) CIs.
        assert!((cases[1].metrics["ceiling_drift_rel"] - 0.5).abs() < 1e-9);
        assert!((cases[2].metrics["ceiling_drift_rel"] - 1.0).abs() < 1e-9);
        assert!(cases[1].tags["ceiling_drift"].contains("beyond both CIs"));
        // Ends that agree within their CIs flag nothing.
        let mut same = vec![before.clone(), cases[1].clone()];
        same[1].tags.clear();
        same[1].metrics.remove("ceiling_drift_rel");
        let again = at(before.clone(), "2026-01-01T10:10:00Z");
        let cl = from_run(&same, &[again], "r", &BTreeMap::new());
        apply(&mut same, &cl);
        assert!(
            !same[1].tags.contains_key("ceiling_drift"),
            "{:?}",
            same[1].tags
        );
        // A lone kernel needs no bracket.
        assert!(bracket_cases(&[before]).is_empty());
    }

    #[test]
    fn utilisation_above_one_is_a_measurement_error() {
        // Decode "moving" 100× the read ceiling's bytes per second: its
        // weights sat in cache, or the bytes are miscounted.
        let read = case("kernel/read-1G", "cpu", vec![vec![1.0; 5]; 2]);
        let decode = case("decode/dense-tiny/q4_0", "cpu", vec![vec![1e-6; 5]; 2]);
        let mut cases = vec![read, decode];
        let cl = from_cases(&cases, "r");
        apply(&mut cases, &cl);
        assert!(cases[1].metrics["mbu"] > 1.0);
        assert!(
            cases[1].tags["measurement_error"].contains("never projected from"),
            "{:?}",
            cases[1].tags
        );
        assert!(!cases[0].tags.contains_key("measurement_error"));
    }

    #[test]
    fn arrays_meeting_the_rule_beat_faster_ones_in_cache() {
        // The small triad is 10× faster (in cache); the large one was sized
        // by a (fake, 1-byte) LLC and meets the rule.
        let small = case("kernel/stream-1M", "cpu", vec![vec![1e-4; 5]; 2]);
        let large = case("kernel/stream-1K", "cpu", vec![vec![1e-5; 5]; 2]);
        let planned =
            BTreeMap::from([("kernel/stream-1K".to_string(), llc::judge(4096, 3, Some(1)))]);
        let cl = from_run(&[small, large], &[], "r", &planned);
        assert_eq!(cl.len(), 1);
        assert_eq!(cl[0].case, "kernel/stream-1K@cpu");
        assert!(cl[0].sizing.as_ref().unwrap().rule_met);
    }
}
