//! A fixed run for report tests that holds every kind of data a figure
//! reads — GEMM kernels on cpu and wgpu, energy from several sources,
//! measured roofline ceilings, decode under memory caps (one oom, one
//! projected), a training loss curve — built through the real aggregation.

use capbench_workloads::Verification;

use crate::analysis::fixtures::{case, jittered, run};
use crate::report::model::{ReportInput, keys};
use crate::results::{CaseResult, Headline, Status};

fn verified(mut c: CaseResult, scaled_max_diff: f64) -> CaseResult {
    c.verification = Some(Verification {
        passed: true,
        reference: "f64 product of the dtype-rounded inputs".into(),
        elements_checked: 4096,
        max_abs_diff: scaled_max_diff * 16.0,
        max_rel_diff: scaled_max_diff * 2.0,
        scaled_max_diff,
        tolerance: 1e-2,
        nan_or_inf: 0,
        mean_kl: None,
        top1_agreement: None,
        note: String::new(),
    });
    c
}

fn energy(mut c: CaseResult, j_per_iter: f64, source: &str) -> CaseResult {
    c.metrics.insert(keys::ENERGY_J_PER_ITER.into(), j_per_iter);
    c.tags.insert(keys::TAG_ENERGY_SOURCE.into(), source.into());
    c
}

fn ceilings(mut c: CaseResult, gflops: f64, gbytes: f64) -> CaseResult {
    c.metrics.insert(keys::PEAK_GFLOPS_PER_S.into(), gflops);
    c.metrics.insert(keys::PEAK_GBYTES_PER_S.into(), gbytes);
    c
}

/// Renames a GEMM-built case into another workload kind (the report reads
/// names, kinds, metrics and tags; the spec stays a GEMM's).
fn as_kind(mut c: CaseResult, name: &str, kind: &str, backend: &str, cap: &str) -> CaseResult {
    c.workload.name = name.into();
    c.kind = kind.into();
    c.backend = backend.into();
    c.id = format!("{name}@{backend}{cap}");
    c
}

fn decode(cap_gib: f64, tokens_per_s: Option<f64>, projected: bool) -> CaseResult {
    let cap = format!("+mem={cap_gib}GiB");
    let mut c = as_kind(
        case("kernel/gemm-f32-64", "cpu", jittered(0.02, 2, 3)),
        "decode/tiny-llama-q4",
        "decode",
        "cpu",
        &cap,
    );
    c.metrics.clear();
    c.metrics
        .insert(keys::MEM_CAP_BYTES.into(), cap_gib * (1u64 << 30) as f64);
    c.tags.insert(keys::TAG_QUANT.into(), "q4".into());
    match tokens_per_s {
        Some(t) => {
            c.metrics.insert(keys::TOKENS_PER_S.into(), t);
            c.metrics.insert(keys::ENERGY_J_PER_TOKEN.into(), 3.0 / t);
            c.metrics.insert(keys::EVAL_LOSS_NATS.into(), 2.31);
            c.metrics.insert(keys::TOKEN_LATENCY_S_P50.into(), 1.0 / t);
            c.metrics.insert(keys::TOKEN_LATENCY_S_P90.into(), 1.2 / t);
            c.metrics.insert(keys::TOKEN_LATENCY_S_P99.into(), 1.5 / t);
            c.tags
                .insert(keys::TAG_ENERGY_SOURCE.into(), "polled".into());
            c.headline = Some(Headline {
                metric: keys::TOKENS_PER_S.into(),
                value: t,
                ci95_low: t * 0.97,
                ci95_high: t * 1.02,
                higher_is_better: true,
            });
            if projected {
                c.tags
                    .insert(keys::TAG_THROUGHPUT_SOURCE.into(), "projected".into());
            }
        }
        None => {
            c.status = Status::Oom;
            c.status_detail =
                "process 0: allocation of 1610612736 bytes failed under the 1 GiB cap".into();
            c.headline = None;
            c.stats = None;
            c.verification = None;
        }
    }
    c
}

fn training() -> CaseResult {
    let mut c = as_kind(
        case("kernel/gemm-f32-64", "cpu", jittered(0.05, 2, 4)),
        "train/tiny-dense",
        "train",
        "cpu",
        "",
    );
    c.metrics.clear();
    c.headline = None;
    c.metrics.insert(keys::ENTROPY_FLOOR_NATS.into(), 1.5);
    // A curve decaying towards the floor: loss = floor + 3·e^(−step/40).
    let curve = (0..=20)
        .map(|i| {
            let step = (i * 10) as f64;
            [step, 1.5 + 3.0 * (-step / 40.0).exp()]
        })
        .collect();
    c.series.insert(keys::SERIES_LOSS_CURVE.into(), curve);
    c
}

/// The fixed run: every figure has data.
pub fn full() -> Vec<ReportInput> {
    let cases = vec![
        ceilings(
            energy(
                verified(
                    case("kernel/gemm-f32-64", "cpu", jittered(2.0e-5, 3, 0)),
                    4.7e-7,
                ),
                0.002,
                "measured",
            ),
            120.0,
            25.0,
        ),
        energy(
            verified(
                case("kernel/gemm-f32-64", "wgpu", jittered(2.0e-4, 3, 1)),
                4.7e-7,
            ),
            0.03,
            "modelled",
        ),
        verified(
            case("kernel/gemm-f16-64", "cpu", jittered(1.2e-5, 3, 2)),
            3.3e-4,
        ),
        verified(
            case("kernel/gemm-bf16-64", "cpu", jittered(1.0e-5, 3, 5)),
            2.7e-3,
        ),
        decode(1.0, None, false),
        decode(2.0, Some(18.0), false),
        decode(4.0, Some(21.0), false),
        decode(8.0, Some(40.0), true),
        training(),
    ];
    let mut r = run("f1x7ure", cases);
    for c in &r.cases {
        *r.totals
            .by_status
            .entry(c.status.as_str().to_string())
            .or_default() += 1;
    }
    vec![ReportInput {
        source: "results/local/fixture".into(),
        run: r,
    }]
}

/// Only GEMM kernels on cpu: what a run today holds.
pub fn kernels_only() -> Vec<ReportInput> {
    let cases = vec![
        verified(
            case("kernel/gemm-f32-64", "cpu", jittered(2.0e-5, 2, 0)),
            4.7e-7,
        ),
        verified(
            case("kernel/gemm-f32-128", "cpu", jittered(1.2e-4, 2, 1)),
            5.1e-7,
        ),
    ];
    vec![ReportInput {
        source: "results/local/kernels".into(),
        run: run("k3rnels", cases),
    }]
}
