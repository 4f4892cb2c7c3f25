//! `WorkloadSpec`: the versioned identity of a workload instance, parsed from
//! its name (e.g. `kernel/gemm-f32-256`), with analytic FLOPs and bytes.

use serde::{Deserialize, Serialize};

use crate::error::{Result, WorkloadError};

/// Element type a workload computes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    F32,
    F16,
    Bf16,
}

impl DType {
    pub fn parse(s: &str) -> Option<DType> {
        match s {
            "f32" => Some(DType::F32),
            "f16" => Some(DType::F16),
            "bf16" => Some(DType::Bf16),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::Bf16 => "bf16",
        }
    }
    pub fn size_bytes(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F16 | DType::Bf16 => 2,
        }
    }
    /// Bound on max|out - ref| / max|ref| for a GEMM whose inputs are already
    /// rounded to this dtype: only accumulation and output rounding remain
    /// (f16 keeps 11 significant bits, bf16 8), with headroom for summation order.
    pub fn gemm_tolerance(self) -> f64 {
        match self {
            DType::F32 => 1e-4,
            DType::F16 => 1e-2,
            DType::Bf16 => 4e-2,
        }
    }
}

/// Deliberate failures, so the harness's isolation can be tested on the real
/// binary: each one is how a real case dies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "mode")]
pub enum FaultMode {
    Panic,
    Abort,
    Hang,
    Oom,
    Wrong,
    /// Succeeds, after sleeping this long in prepare (for resume tests).
    Slow {
        ms: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Params {
    /// C(m,n) = A(m,k) · B(k,n), row-major.
    Gemm {
        m: usize,
        n: usize,
        k: usize,
        dtype: DType,
    },
    Fault {
        fault: FaultMode,
    },
}

/// A workload instance: name + version + parameters. Two results are
/// comparable only when name and version match.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkloadSpec {
    /// Canonical instance name, e.g. `kernel/gemm-f32-256`.
    pub name: String,
    /// `kernel` or `fault` (training and decode come with the model families).
    pub kind: String,
    /// Bumped whenever the computation behind the name changes.
    pub version: u32,
    pub seed: u64,
    pub params: Params,
}

pub const GEMM_VERSION: u32 = 1;
pub const FAULT_VERSION: u32 = 1;
pub const DEFAULT_SEED: u64 = 0x5eed_cab0;

impl WorkloadSpec {
    /// Parses an instance name. Accepted forms:
    /// `kernel/gemm-<f32|f16|bf16>-<N>` (square) or `-<M>x<N>x<K>`, and
    /// `fault/<panic|abort|hang|oom|wrong|slow-<ms>>`.
    pub fn parse(name: &str) -> Result<WorkloadSpec> {
        let unknown = |hint: &str| WorkloadError::UnknownName {
            what: "workload",
            name: name.to_string(),
            hint: hint.to_string(),
        };
        if let Some(rest) = name.strip_prefix("kernel/gemm-") {
            let hint =
                "expected kernel/gemm-<f32|f16|bf16>-<N> or -<M>x<N>x<K>, e.g. kernel/gemm-f32-256";
            let (dt, dims) = rest.split_once('-').ok_or_else(|| unknown(hint))?;
            let dtype = DType::parse(dt).ok_or_else(|| unknown(hint))?;
            let nums: Vec<usize> = dims
                .split('x')
                .map(|d| d.parse::<usize>().ok().filter(|v| *v > 0))
                .collect::<Option<_>>()
                .ok_or_else(|| unknown(hint))?;
            let (m, n, k) = match nums.as_slice() {
                [s] => (*s, *s, *s),
                [m, n, k] => (*m, *n, *k),
                _ => return Err(unknown(hint)),
            };
            return Ok(Self::gemm(m, n, k, dtype));
        }
        if let Some(rest) = name.strip_prefix("fault/") {
            let fault = match rest {
                "panic" => FaultMode::Panic,
                "abort" => FaultMode::Abort,
                "hang" => FaultMode::Hang,
                "oom" => FaultMode::Oom,
                "wrong" => FaultMode::Wrong,
                other => {
                    let ms = other
                        .strip_prefix("slow-")
                        .and_then(|v| v.strip_suffix("ms"))
                        .and_then(|v| v.parse::<u64>().ok())
                        .ok_or_else(|| {
                            unknown("expected fault/panic|abort|hang|oom|wrong|slow-<N>ms")
                        })?;
                    FaultMode::Slow { ms }
                }
            };
            return Ok(WorkloadSpec {
                name: name.to_string(),
                kind: "fault".into(),
                version: FAULT_VERSION,
                seed: DEFAULT_SEED,
                params: Params::Fault { fault },
            });
        }
        Err(unknown(
            "see `capbench list workloads` for the names and forms accepted",
        ))
    }

    pub fn gemm(m: usize, n: usize, k: usize, dtype: DType) -> WorkloadSpec {
        let dims = if m == n && n == k {
            format!("{m}")
        } else {
            format!("{m}x{n}x{k}")
        };
        WorkloadSpec {
            name: format!("kernel/gemm-{}-{dims}", dtype.as_str()),
            kind: "kernel".into(),
            version: GEMM_VERSION,
            seed: DEFAULT_SEED,
            params: Params::Gemm { m, n, k, dtype },
        }
    }

    /// Floating-point operations in one timed iteration (a multiply-add
    /// counts as two, the usual GEMM convention).
    pub fn flops_per_iter(&self) -> f64 {
        match self.params {
            Params::Gemm { m, n, k, .. } => 2.0 * m as f64 * n as f64 * k as f64,
            Params::Fault { .. } => 2.0 * 16.0 * 16.0 * 16.0,
        }
    }

    /// Minimum bytes moved to and from memory in one iteration (each operand
    /// read once, the output written once).
    pub fn bytes_per_iter(&self) -> f64 {
        match self.params {
            Params::Gemm { m, n, k, dtype } => {
                ((m * k + k * n + m * n) * dtype.size_bytes()) as f64
            }
            Params::Fault { .. } => (3 * 16 * 16 * 4) as f64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_square_and_rectangular_gemm() {
        let s = WorkloadSpec::parse("kernel/gemm-f32-256").unwrap();
        assert_eq!(
            s.params,
            Params::Gemm {
                m: 256,
                n: 256,
                k: 256,
                dtype: DType::F32
            }
        );
        assert_eq!(s.flops_per_iter(), 2.0 * 256f64.powi(3));
        let r = WorkloadSpec::parse("kernel/gemm-bf16-64x128x32").unwrap();
        assert_eq!(
            r.params,
            Params::Gemm {
                m: 64,
                n: 128,
                k: 32,
                dtype: DType::Bf16
            }
        );
        assert_eq!(r.name, "kernel/gemm-bf16-64x128x32");
        assert_eq!(
            r.bytes_per_iter(),
            ((64 * 32 + 32 * 128 + 64 * 128) * 2) as f64
        );
    }

    #[test]
    fn canonical_name_round_trips() {
        for n in [
            "kernel/gemm-f16-512",
            "kernel/gemm-f32-1x2x3",
            "fault/slow-250ms",
        ] {
            assert_eq!(WorkloadSpec::parse(n).unwrap().name, n);
        }
    }

    #[test]
    fn rejects_bad_names_with_a_hint() {
        for bad in [
            "kernel/gemm-f64-256",
            "kernel/gemm-f32-0",
            "kernel/gemm-f32-2x3",
            "gemm",
            "fault/slow-x",
        ] {
            let e = WorkloadSpec::parse(bad).unwrap_err().to_string();
            assert!(e.contains(bad), "{e}");
        }
    }
}
