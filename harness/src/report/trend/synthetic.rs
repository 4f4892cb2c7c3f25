//! A synthetic history for the dashboard's tests: twelve commits of two
//! cases, one with a 10 % drop from commit 8 on (the change point marked
//! as a detector would report it), one steady.

use super::{ChangeMark, Dashboard, TrendCase, TrendPoint};

/// ±1 % deterministic wobble, so the plot is not a ruler line.
fn wobble(i: usize) -> f64 {
    ((i * 7 + 3) % 5) as f64 * 0.005 - 0.01
}

fn points(level: impl Fn(usize) -> f64) -> Vec<TrendPoint> {
    (0..12)
        .map(|i| {
            let m = level(i) * (1.0 + wobble(i));
            TrendPoint {
                commit: format!("{:07x}{}", 0xa1b2c00 + i, "0".repeat(33)),
                time: format!("2026-12-{:02}T10:00:00Z", i + 1),
                median: m,
                ci95_low: m * 0.98,
                ci95_high: m * 1.02,
            }
        })
        .collect()
}

pub fn dashboard() -> Dashboard {
    let step = points(|i| if i < 8 { 110.0 } else { 99.0 });
    let steady = points(|_| 40.0);
    Dashboard {
        title: "capbench history · main · fixture-host".into(),
        method: "E-Divisive means (Matteson & James 2014), permutation test p < 0.05".into(),
        cases: vec![
            TrendCase {
                case: "kernel/gemm-f32-256@cpu".into(),
                metric: "gflops_per_s".into(),
                higher_is_better: true,
                machine_id: "f1x7ure0machine".into(),
                branch: "main".into(),
                change_points: vec![ChangeMark {
                    index: 8,
                    commit: step[8].commit.clone(),
                    change_rel: -0.10,
                    confidence: 0.998,
                }],
                points: step,
                baseline_level: Some(110.0),
                current_level: Some(99.0),
                verdict: "regressed".into(),
            },
            TrendCase {
                case: "decode/dense-small/q4_0/p8g16@cpu".into(),
                metric: "tokens_per_s".into(),
                higher_is_better: true,
                machine_id: "f1x7ure0machine".into(),
                branch: "main".into(),
                change_points: vec![],
                points: steady,
                baseline_level: Some(40.0),
                current_level: Some(40.0),
                verdict: "stable".into(),
            },
        ],
    }
}
