//! The number formats of a workload: the element type it computes in and the
//! format model weights are stored in (shared by specs, models and engines).

use serde::{Deserialize, Serialize};

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

/// How model weights are stored for inference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WeightFmt {
    F32,
    F16,
    Bf16,
    /// ggml q8_0: blocks of 32 int8 weights + one f16 scale (34 bytes).
    Q8_0,
    /// ggml q4_0: blocks of 32 4-bit weights + one f16 scale (18 bytes).
    Q4_0,
}

impl WeightFmt {
    pub fn parse(s: &str) -> Option<WeightFmt> {
        Some(match s {
            "f32" => WeightFmt::F32,
            "f16" => WeightFmt::F16,
            "bf16" => WeightFmt::Bf16,
            "q8_0" => WeightFmt::Q8_0,
            "q4_0" => WeightFmt::Q4_0,
            _ => return None,
        })
    }
    pub fn as_str(self) -> &'static str {
        match self {
            WeightFmt::F32 => "f32",
            WeightFmt::F16 => "f16",
            WeightFmt::Bf16 => "bf16",
            WeightFmt::Q8_0 => "q8_0",
            WeightFmt::Q4_0 => "q4_0",
        }
    }
    /// Stored bytes per weight.
    pub fn bytes_per_weight(self) -> f64 {
        match self {
            WeightFmt::F32 => 4.0,
            WeightFmt::F16 | WeightFmt::Bf16 => 2.0,
            WeightFmt::Q8_0 => 34.0 / 32.0,
            WeightFmt::Q4_0 => 18.0 / 32.0,
        }
    }
}
