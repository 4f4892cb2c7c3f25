//! The limits on sizes in workload names, checked once a name is parsed so
//! every size derived from a name (bytes, FLOPs, KV cache) is computed
//! without overflow, in the planner and in the worker.

use super::{Params, WorkloadSpec};
use crate::error::{Result, WorkloadError};

/// Largest GEMM dimension, attention or sequence length, token count: each
/// product of two or three of them (bytes, FLOPs, scores) stays far inside
/// `usize`/`u64`, and the largest is already a machine of petabytes.
pub const MAX_DIM: usize = 1 << 20;
/// Largest batch of a model workload.
pub const MAX_BATCH: usize = 1 << 16;
/// Most optimiser steps of a quality run.
pub const MAX_STEPS: usize = 1 << 24;
/// Most f32 elements per STREAM array (4 TiB each).
pub const MAX_STREAM_ELEMS: usize = 1 << 40;
impl WorkloadSpec {
    /// Refuses sizes beyond the documented limits (`MAX_DIM` and the rest),
    /// so every size derived from a name — buffer bytes, FLOPs, KV cache —
    /// is computed without overflow, in the planner and in the worker.
    pub(super) fn check_sizes(&self) -> Result<()> {
        let over = |what: &str, v: usize, max: usize| -> Result<()> {
            if v > max {
                return Err(WorkloadError::UnknownName {
                    what: "workload",
                    name: self.name.clone(),
                    hint: format!(
                        "{what} {v} is beyond capbench's limit of {max} (README, \"What capbench promises about bad input and failures\")"
                    ),
                });
            }
            Ok(())
        };
        match &self.params {
            Params::Gemm { m, n, k, .. } => {
                for (w, v) in [("m", m), ("n", n), ("k", k)] {
                    over(&format!("GEMM dimension {w} ="), *v, MAX_DIM)?;
                }
            }
            Params::Stream { elems } => over("elements per array", *elems, MAX_STREAM_ELEMS)?,
            Params::Read { bytes } => {
                over("bytes", *bytes, 4 * MAX_STREAM_ELEMS)?;
                if !bytes.is_multiple_of(64) {
                    return Err(WorkloadError::UnknownName {
                        what: "workload",
                        name: self.name.clone(),
                        hint: format!(
                            "kernel/read sums whole 64-byte blocks; {bytes} bytes is not a multiple of 64 — e.g. kernel/read-128M"
                        ),
                    });
                }
            }
            Params::Attention { seq } => over("positions", *seq, MAX_DIM)?,
            Params::Train { batch, seq, .. } => {
                over("batch", *batch, MAX_BATCH)?;
                over("sequence length", *seq, MAX_DIM)?;
            }
            Params::TrainQuality {
                steps, batch, seq, ..
            } => {
                over("steps", *steps, MAX_STEPS)?;
                over("batch", *batch, MAX_BATCH)?;
                over("sequence length", *seq, MAX_DIM)?;
            }
            Params::Decode {
                prompt,
                gen_tokens,
                batch,
                depth,
                ..
            } => {
                over("prompt tokens", *prompt, MAX_DIM)?;
                over("generated tokens", *gen_tokens, MAX_DIM)?;
                over("batch", *batch, MAX_BATCH)?;
                over("depth", *depth, MAX_DIM)?;
            }
            Params::Fault { .. } => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_that_wrap_or_pass_the_limits_are_refused() {
        // 17179869184·2^30 = 2^64: wrapped to 0 elements before.
        for bad in [
            "kernel/stream-17179869184G",
            "kernel/stream-18446744073709551615K",
            "kernel/stream-2048G",
            "kernel/gemm-f32-4294967296",
            "kernel/gemm-f32-1x1x2097152",
            "kernel/attention-4194304",
            "decode/dense-tiny/f32/p99999999999",
            "decode/dense-tiny/f32/b100000000",
            "train-step/dense-tiny/f32/b1t4611686018427387904",
            "train-quality/dense-tiny/f32/s4294967296",
            "decode/dense-tiny/f32/p99999999999999999999999",
        ] {
            let e = WorkloadSpec::parse(bad).unwrap_err().to_string();
            assert!(e.contains(bad), "{e}");
        }
        for good in [
            "kernel/stream-1G",
            "kernel/gemm-f32-1048576",
            "kernel/attention-1M",
        ] {
            WorkloadSpec::parse(good).unwrap();
        }
    }
}
