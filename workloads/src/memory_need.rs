//! The predicted memory need of a workload: what a worker holds at its peak
//! (data in its dtype, the host copies and reference it is verified against,
//! temporaries). `fits / does not fit` under a cap is judged with it before
//! the cap is put to the test, and its error against the measured peak is
//! reported beside it.

use crate::spec::{Params, WorkloadSpec};

/// The packing buffers of candle's CPU GEMM (the `gemm` crate), measured
/// with the counting allocator: ~1.03 MiB whatever the size, at 2 threads.
pub const GEMM_WORKSPACE_BYTES: f64 = 1.03 * (1 << 20) as f64;

pub fn bytes(spec: &WorkloadSpec) -> Option<f64> {
    match &spec.params {
        Params::Gemm { m, n, k, dtype, .. } => {
            let (m, n, k) = (*m as f64, *n as f64, *k as f64);
            // Host operands in f32, device operands and the result in the
            // dtype, and the CPU GEMM's packing workspace.
            let host = (m * k + k * n) * 4.0;
            let device = (m * k + k * n + m * n) * dtype.size_bytes() as f64;
            Some(host + device + GEMM_WORKSPACE_BYTES)
        }
        // a, b and c of the triad on the device, b and c on the host.
        Params::Stream { elems } => Some(*elems as f64 * 4.0 * 3.0),
        Params::Attention { .. } | Params::Fault { .. } => None,
        Params::Train { .. } | Params::Decode { .. } | Params::TrainQuality { .. } => {
            crate::models::work::memory_need_bytes(spec)
        }
    }
}
