//! A machine's measured ceiling as the schema records it (`run.json`
//! `ceilings`); `analysis::ceilings` finds them and applies them to cases.
//! A bracketed run holds two per key (before and after its other cases).

use serde::{Deserialize, Serialize};

/// What a ceiling bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CeilingKind {
    /// Peak GEMM throughput of one dtype, `gflops_per_s`.
    Gemm,
    /// Sustainable memory bandwidth (STREAM triad), `gbytes_per_s`.
    Stream,
    /// Read-only memory bandwidth (`kernel/read`), `gbytes_per_s`: the
    /// roof of decode, which streams its weights and writes next to nothing.
    Read,
}

impl CeilingKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CeilingKind::Gemm => "gemm",
            CeilingKind::Stream => "stream",
            CeilingKind::Read => "read",
        }
    }
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
    /// Bandwidth ceilings: the LLC, the array sizes and STREAM's sizing
    /// rule (each array ≥ 4 × LLC), and whether it was met.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sizing: Option<capbench_workloads::cost::llc::ArraySizing>,
    /// When the case that measured it started (RFC 3339) and how long it
    /// ran: each case takes the ceiling measured nearest to it in time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured_at: Option<String>,
    #[serde(default)]
    pub elapsed_s: f64,
    /// `before` (the suite's own measurement) or `after` (measured again
    /// once the run's other cases were done); absent when not bracketed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bracket: Option<String>,
}

impl Ceiling {
    /// Identity: two ceilings with the same key bound the same thing (a
    /// bracketed pair shares one key).
    pub fn key(&self) -> (CeilingKind, String, Option<usize>, Option<String>) {
        (
            self.kind,
            self.backend.clone(),
            self.threads,
            self.dtype.clone(),
        )
    }
}

impl Ceiling {
    /// The middle of the measuring case, seconds since the Unix epoch.
    pub fn mid_time_s(&self) -> Option<f64> {
        mid_time_s(self.measured_at.as_deref()?, self.elapsed_s)
    }
}

/// `started_at` + half of `elapsed_s`, seconds since the Unix epoch.
pub fn mid_time_s(started_at: &str, elapsed_s: f64) -> Option<f64> {
    let t = humantime::parse_rfc3339_weak(started_at).ok()?;
    let s = t.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs_f64();
    Some(s + elapsed_s / 2.0)
}
