//! The change-point analysis on synthetic histories with known steps: the
//! detection rate and delay per step size, and false alarms on noise-only
//! series, under this machine's measured run-to-run noise and under a quiet
//! runner's. The table this prints (`cargo test -p capbench --lib
//! history_tests -- --nocapture`) is the one in docs/history.md.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;
use crate::results::history::SeriesPoint;

/// ln(run median / median of all) of the same build's sequential runs on
/// the 2-core VM, 5 agents building beside it (scripts/ab-trials.sh, 20
/// trials, 2026-12-06, load average 11-16: the 40 `t*-seq-A` and `t*-seq-0`
/// runs of scripts/ab-trials.toml at --repeat 16). Mostly within ±4%, with
/// the heavy tail of a shared machine (two runs 26% slow).
const MEASURED: [f64; 40] = [
    -0.319, -0.301, -0.074, -0.061, -0.042, -0.037, -0.027, -0.025, -0.024, -0.024, -0.020, -0.014,
    -0.009, -0.007, -0.007, -0.005, -0.003, -0.001, 0.0, 0.0, 0.0, 0.001, 0.001, 0.002, 0.003,
    0.004, 0.004, 0.007, 0.009, 0.009, 0.010, 0.011, 0.015, 0.017, 0.024, 0.025, 0.026, 0.026,
    0.033, 0.037,
];
/// Median half-width of those runs' between-process 95% CI, relative.
const MEASURED_CI_REL: f64 = 0.037;

#[derive(Clone, Copy)]
enum Noise {
    /// Resampled from `MEASURED` (independent draws: the drift between
    /// neighbouring runs is not modelled).
    Measured,
    /// Normal with this relative standard deviation.
    Normal(f64),
}

impl Noise {
    fn draw(self, rng: &mut ChaCha8Rng) -> f64 {
        match self {
            Noise::Measured => MEASURED[rng.random_range(0..MEASURED.len())],
            Noise::Normal(sd) => {
                // Box–Muller.
                let (u, v): (f64, f64) = (rng.random::<f64>().max(1e-12), rng.random());
                sd * (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
            }
        }
    }

    fn ci_rel(self) -> f64 {
        match self {
            Noise::Measured => MEASURED_CI_REL,
            Noise::Normal(sd) => sd,
        }
    }
}

fn series(values: &[f64], ci_rel: f64) -> Series {
    Series {
        case: "synthetic".into(),
        metric: "gflops_per_s".into(),
        higher_is_better: true,
        machine_id: "m".into(),
        branch: "main".into(),
        points: values
            .iter()
            .enumerate()
            .map(|(i, v)| SeriesPoint {
                commit: format!("c{i:02}"),
                run_id: format!("r{i:02}"),
                time: format!("2026-01-01T00:{i:02}:00Z"),
                median: *v,
                ci95_low: v * (1.0 - ci_rel),
                ci95_high: v * (1.0 + ci_rel),
                n: 8,
            })
            .collect(),
    }
}

/// Runs before the step, and the most runs after it looked at.
const BEFORE: usize = 20;
const MAX_DELAY: usize = 10;

/// Runs at the new level until the analysis reports a regression at the
/// step (±1 run), looking at the history as it grows; `None`: not found
/// within `MAX_DELAY` runs.
fn delay(step: f64, noise: Noise, rng: &mut ChaCha8Rng, o: &AnalyzeOptions) -> Option<usize> {
    let values: Vec<f64> = (0..BEFORE + MAX_DELAY)
        .map(|i| {
            let level = if i >= BEFORE { 1.0 - step } else { 1.0 };
            100.0 * level * noise.draw(rng).exp()
        })
        .collect();
    (1..=MAX_DELAY).find(|d| {
        let s = series(&values[..BEFORE + d], noise.ci_rel());
        change_points(&s, o)
            .iter()
            .any(|c| c.index.abs_diff(BEFORE) <= 1 && c.direction == "regression")
    })
}

fn false_alarm(noise: Noise, rng: &mut ChaCha8Rng, o: &AnalyzeOptions) -> bool {
    let values: Vec<f64> = (0..30).map(|_| 100.0 * noise.draw(rng).exp()).collect();
    !change_points(&series(&values, noise.ci_rel()), o).is_empty()
}

/// (found within 3 runs, found within MAX_DELAY, median delay) per step.
fn rates(noise: Noise, steps: &[f64], n: usize) -> (Vec<(usize, usize, f64)>, usize) {
    let o = AnalyzeOptions::default();
    let mut rng = ChaCha8Rng::seed_from_u64(19);
    let per_step = steps
        .iter()
        .map(|&step| {
            let d: Vec<Option<usize>> = (0..n).map(|_| delay(step, noise, &mut rng, &o)).collect();
            let found: Vec<f64> = d.iter().flatten().map(|x| *x as f64).collect();
            let med = if found.is_empty() {
                f64::NAN
            } else {
                stats::median(&found)
            };
            (
                d.iter().filter(|x| x.is_some_and(|x| x <= 3)).count(),
                found.len(),
                med,
            )
        })
        .collect();
    let fa = (0..n).filter(|_| false_alarm(noise, &mut rng, &o)).count();
    (per_step, fa)
}

#[test]
fn synthetic_histories_detection_and_false_alarms() {
    const N: usize = 40;
    let steps = [0.03, 0.05, 0.10, 0.20];
    for (name, noise) in [
        ("measured (2-core VM, shared)", Noise::Measured),
        ("normal, sd 2% (a quiet runner)", Noise::Normal(0.02)),
    ] {
        let (per_step, fa) = rates(noise, &steps, N);
        eprintln!("noise {name}: false alarms on 30-run noise-only series: {fa}/{N}");
        for (s, (within3, found, med)) in steps.iter().zip(&per_step) {
            eprintln!(
                "  step -{:.0}%: found within 3 runs {within3}/{N}, within {MAX_DELAY} {found}/{N}, median delay {med} runs",
                s * 100.0
            );
        }
        // The permutation test holds its level on exchangeable noise,
        // heavy tails included (Matteson & James 2014, §3.2).
        assert!(fa <= N / 10, "{name}: {fa} false alarms in {N}");
        // A 20% step stands far out of either noise.
        assert!(per_step[3].1 >= N * 9 / 10, "{name}: {:?}", per_step[3]);
    }
}

#[test]
fn a_slow_drift_is_drifting_and_a_recent_step_decides_the_verdict() {
    let o = AnalyzeOptions::default();
    // 1% slower per run for 12 runs, no step.
    let drift: Vec<f64> = (0..12).map(|i| 100.0 * (1.0 - 0.01 * i as f64)).collect();
    let t = analyze_series(&series(&drift, 0.005), &o);
    assert_eq!(t.verdict, TrendVerdict::Drifting, "{t:?}");
    // An improvement of 20% three runs before the end.
    let mut up = vec![100.0; 12];
    for (i, x) in up.iter_mut().enumerate() {
        *x += [0.3, -0.2, 0.1, -0.3, 0.2, 0.0][i % 6];
    }
    for x in &mut up[9..] {
        *x *= 1.2;
    }
    let t = analyze_series(&series(&up, 0.005), &o);
    assert_eq!(t.verdict, TrendVerdict::Improved, "{t:?}");
    assert_eq!(t.change_points[0].commit, "c09");
    assert!(t.current_level.unwrap() > 119.0);
    assert!((t.level_before_last_change.unwrap() - 100.0).abs() < 0.5);
    // Too few runs.
    let t = analyze_series(&series(&up[..5], 0.005), &o);
    assert_eq!(t.verdict, TrendVerdict::TooFewRuns);
    // A step smaller than the threshold is no change point.
    let mut small = up[..9].to_vec();
    small.extend([99.0, 99.2, 98.9]);
    let t = analyze_series(&series(&small, 0.005), &o);
    assert!(t.change_points.is_empty(), "{t:?}");
}
