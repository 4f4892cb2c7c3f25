//! The cost model, in one place: the analytic FLOPs and bytes of one timed
//! iteration of every workload, and the memory a worker needs to run it.
//! Kernels are counted here, model workloads in `work`; `memory` holds the
//! CPU runtime's own buffers the memory predictor adds.

pub mod llc;
pub mod memory;
pub mod work;

use crate::spec::{Params, WorkloadSpec};
use memory::{gemm_parallel, gemm_slabs, half_matmul_extra_bytes};

/// `kernel/attention-<T>` runs one batch of 8 heads × 64 dims.
pub const ATTENTION_HEADS: usize = 8;
pub const ATTENTION_HEAD_DIM: usize = 64;

/// Causal attention FLOPs: QKᵀ and PV each 2·H·hd per visible (i, j) pair,
/// T(T+1)/2 pairs.
pub fn attention_flops(t: usize) -> f64 {
    4.0 * (ATTENTION_HEADS * ATTENTION_HEAD_DIM) as f64 * (t * (t + 1) / 2) as f64
}

/// A worker's predicted peak heap bytes (see `WorkloadSpec::memory_need_bytes`).
pub fn memory_need(spec: &WorkloadSpec) -> Option<f64> {
    match &spec.params {
        Params::Gemm { m, n, k, dtype, .. } => {
            let (mf, nf, kf) = (*m as f64, *n as f64, *k as f64);
            // Host operands in f32, device operands and the result in the
            // dtype, the CPU GEMM's packing slabs and half-precision copies.
            let host = (mf * kf + kf * nf) * 4.0;
            let device = (mf * kf + kf * nf + mf * nf) * dtype.size_bytes() as f64;
            let par = gemm_parallel(*m, *n, *k);
            Some(
                host + device + gemm_slabs(!par, par) + half_matmul_extra_bytes(*dtype, *m, *n, *k),
            )
        }
        // a, b and c of the triad on the device, b and c on the host.
        Params::Stream { elems } => Some(*elems as f64 * 4.0 * 3.0),
        // The one array summed, host memory only.
        Params::Read { bytes } => Some(*bytes as f64),
        Params::Attention { seq } => {
            let (h, d) = (ATTENTION_HEADS, ATTENTION_HEAD_DIM);
            let t = *seq as f64;
            // q, k, v on the host (f32) and the device, the (T, T) causal
            // mask; at the softmax three (H, T, T) score tensors are alive
            // (scores, exp, normalised); per-head products (T×d)·(d×T).
            let qkv = 3.0 * (h * seq * d) as f64 * 4.0;
            let scores = h as f64 * t * t * 4.0;
            let par = gemm_parallel(*seq, *seq, d);
            Some(2.0 * qkv + t * t * 4.0 + 3.0 * scores + gemm_slabs(!par, par))
        }
        Params::Fault { .. } => None,
        Params::Train { .. } | Params::Decode { .. } | Params::TrainQuality { .. } => {
            work::memory_need_bytes(spec)
        }
    }
}

impl WorkloadSpec {
    /// Predicted peak heap bytes of a worker running this workload on the
    /// CPU: its data, the reference it is verified against, and the
    /// temporaries of the largest phase (see `crate::cost::memory`). `None`
    /// for harness test workloads and GGUF files (known once the file is read).
    pub fn memory_need_bytes(&self) -> Option<f64> {
        memory_need(self)
    }

    /// Floating-point operations in one timed iteration (a multiply-add
    /// counts as two, the usual GEMM convention). Model workloads count the
    /// phase their headline times (see `crate::cost::work`).
    pub fn flops_per_iter(&self) -> f64 {
        match &self.params {
            Params::Gemm { m, n, k, .. } => 2.0 * *m as f64 * *n as f64 * *k as f64,
            Params::Fault { .. } => 2.0 * 16.0 * 16.0 * 16.0,
            Params::Stream { elems } => 2.0 * *elems as f64,
            // One add per f32 read.
            Params::Read { bytes } => *bytes as f64 / 4.0,
            Params::Attention { seq } => attention_flops(*seq),
            Params::Train { .. } | Params::Decode { .. } | Params::TrainQuality { .. } => {
                work::of(self).flops
            }
        }
    }

    /// Minimum bytes moved to and from memory in one iteration (each operand
    /// read once, the output written once).
    pub fn bytes_per_iter(&self) -> f64 {
        match &self.params {
            Params::Gemm { m, n, k, dtype, .. } => {
                ((m * k + k * n + m * n) * dtype.size_bytes()) as f64
            }
            Params::Fault { .. } => (3 * 16 * 16 * 4) as f64,
            // STREAM counts 3 arrays × 4 bytes (McCalpin; no write-allocate).
            Params::Stream { elems } => 12.0 * *elems as f64,
            Params::Read { bytes } => *bytes as f64,
            // q, k, v read and the output written once.
            Params::Attention { seq } => {
                (4 * seq * ATTENTION_HEADS * ATTENTION_HEAD_DIM * 4) as f64
            }
            Params::Train { .. } | Params::Decode { .. } | Params::TrainQuality { .. } => {
                work::of(self).bytes
            }
        }
    }
}
