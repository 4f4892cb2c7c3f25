//! The predicted memory need of a workload: what a worker holds at its peak
//! (data in its dtype, the host copies and reference it is verified against,
//! temporaries). `fits / does not fit` under a cap is judged with it before
//! the cap is put to the test, and its error against the measured peak is
//! reported beside it.

use crate::spec::{Params, WorkloadSpec};

/// Heap the worker process holds whatever it runs (harness state, the
/// candle/rayon runtime, thread bookkeeping), measured with `capbench run
/// --mem-cap` on the smallest GEMM.
pub const BASELINE_BYTES: f64 = 1.0 * (1 << 20) as f64;

pub fn bytes(spec: &WorkloadSpec) -> Option<f64> {
    let own = match &spec.params {
        Params::Gemm { m, n, k, dtype } => {
            let (m, n, k) = (*m as f64, *n as f64, *k as f64);
            // Host operands in f32, device operands and result in the dtype,
            // then the f64 reference and the f32 readback while verifying.
            let host = (m * k + k * n) * 4.0;
            let device = (m * k + k * n + m * n) * dtype.size_bytes() as f64;
            let verify = m * n * (8.0 + 4.0);
            host + device + verify
        }
        Params::Stream { elems } => {
            // a, b, c on the device and b, c on the host for the reference.
            *elems as f64 * 4.0 * 5.0
        }
        Params::Attention { .. } | Params::Fault { .. } => return None,
        Params::Train { .. } | Params::Decode { .. } | Params::TrainQuality { .. } => {
            crate::models::work::memory_need_bytes(spec)?
        }
    };
    Some(own + BASELINE_BYTES)
}
