//! A machine's measured ceiling as the schema records it (`run.json`
//! `ceilings`); `analysis::ceilings` finds them and applies them to cases.

use serde::{Deserialize, Serialize};

/// What a ceiling bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CeilingKind {
    /// Peak GEMM throughput of one dtype, `gflops_per_s`.
    Gemm,
    /// Sustainable memory bandwidth (STREAM triad), `gbytes_per_s`.
    Stream,
}

/// One measured ceiling of a backend under caps, and the case that set it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ceiling {
    pub kind: CeilingKind,
    pub backend: String,
    /// The `--threads` cap the ceiling was measured under (`null`: none).
    pub threads: Option<usize>,
    /// GEMM dtype (`f32`, `f16`, `bf16`); `null` for STREAM.
    pub dtype: Option<String>,
    /// `gflops_per_s` for GEMM, `gbytes_per_s` for STREAM (median).
    pub value: f64,
    pub ci95_low: f64,
    pub ci95_high: f64,
    /// The case id that measured it, and the run it is in (a probe run's
    /// ceilings applied to another run keep the probe's run id).
    pub case: String,
    pub run_id: String,
}

impl Ceiling {
    /// Identity: two ceilings with the same key bound the same thing.
    pub fn key(&self) -> (CeilingKind, String, Option<usize>, Option<String>) {
        (
            self.kind,
            self.backend.clone(),
            self.threads,
            self.dtype.clone(),
        )
    }
}
