//! A/A noise calibration: the same suite run K times on one machine gives, per
//! case, the run-to-run spread that within-run statistics cannot see (drift,
//! neighbours on a shared runner). `compare` then never applies a threshold
//! tighter than that spread.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::results::{RunFile, SCHEMA_VERSION, Status};
use crate::stats;

pub const CALIBRATION_FILE: &str = "calibration.json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseNoise {
    /// Headline point estimate (per-iteration median time, s) of each run.
    pub run_medians_wall_s: Vec<f64>,
    /// Sample standard deviation of the log of those medians.
    pub log_sd: f64,
    /// Relative change two A/A runs stay within 95% of the time:
    /// exp(1.96·√2·log_sd) − 1.
    pub noise_rel: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    pub schema_version: u32,
    pub machine_id: String,
    pub created_at: String,
    pub run_ids: Vec<String>,
    pub method: String,
    pub cases: BTreeMap<String, CaseNoise>,
}

/// Per-case A/A noise from K ≥ 2 runs of the same plan on one machine.
pub fn calibrate(runs: &[RunFile]) -> Result<Calibration, String> {
    if runs.len() < 2 {
        return Err(format!(
            "calibration needs at least 2 runs, got {}",
            runs.len()
        ));
    }
    let machine = &runs[0].env.machine_id;
    if let Some(r) = runs.iter().find(|r| &r.env.machine_id != machine) {
        return Err(format!(
            "runs come from different machines ({} and {}): calibrate on one machine",
            machine, r.env.machine_id
        ));
    }
    let mut per_case: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for r in runs {
        for c in r.cases.iter().filter(|c| c.status == Status::Ok) {
            if let Some(s) = &c.stats {
                per_case
                    .entry(c.identity())
                    .or_default()
                    .push(s.wall_s_median);
            }
        }
    }
    let cases = per_case
        .into_iter()
        .filter(|(_, m)| m.len() >= 2)
        .map(|(k, medians)| {
            let logs: Vec<f64> = medians.iter().map(|m| m.ln()).collect();
            let log_sd = stats::stddev(&logs);
            let noise_rel = (1.96 * std::f64::consts::SQRT_2 * log_sd).exp() - 1.0;
            (
                k,
                CaseNoise {
                    run_medians_wall_s: medians,
                    log_sd,
                    noise_rel,
                },
            )
        })
        .collect();
    Ok(Calibration {
        schema_version: SCHEMA_VERSION,
        machine_id: machine.clone(),
        created_at: crate::results::now_rfc3339(),
        run_ids: runs.iter().map(|r| r.run_id.clone()).collect(),
        method: format!(
            "{} A/A runs; per case, the standard deviation σ of log(run median); noise_rel = exp(1.96·√2·σ) − 1, the 95% bound of a two-run ratio's deviation",
            runs.len()
        ),
        cases,
    })
}
