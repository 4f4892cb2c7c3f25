//! Each workload kind's own parameters, as the registry hands them over
//! after matching `Params` once, so a kind's `prepare` cannot be called
//! with another kind's parameters.

use super::{DType, GemmVariant, WeightFmt};

/// `kernel/gemm`: C(m,n) = A(m,k) · B(k,n), row-major.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GemmParams {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub dtype: DType,
    /// A named rung of the wgpu GEMM ladder; `None`: the backend's best.
    pub variant: Option<GemmVariant>,
}

impl GemmParams {
    /// The backend's best GEMM (no ladder rung) of that shape and dtype.
    pub fn new(m: usize, n: usize, k: usize, dtype: DType) -> GemmParams {
        GemmParams {
            m,
            n,
            k,
            dtype,
            variant: None,
        }
    }
}

/// `train-step`: one step on (batch, seq).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrainParams {
    pub model: String,
    pub dtype: DType,
    pub batch: usize,
    pub seq: usize,
}

/// `train-quality`: `steps` steps on fresh batches, then a held-out eval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QualityParams {
    pub model: String,
    pub dtype: DType,
    pub steps: usize,
    pub batch: usize,
    pub seq: usize,
}

/// `decode` and `prefill` (gen_tokens = 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeParams {
    pub model: String,
    pub format: WeightFmt,
    pub prompt: usize,
    pub gen_tokens: usize,
    pub batch: usize,
    pub depth: usize,
}

/// A workload's parameters as its kind's own type: the one place `Params`
/// is taken apart field by field, so the registry's candle and wgpu
/// dispatch (and anything else) match on kinds, not on field lists.
#[derive(Debug, Clone, PartialEq)]
pub enum Typed {
    Gemm(GemmParams),
    Fault(super::FaultMode),
    Stream(usize),
    Read(usize),
    Attention(usize),
    Train(TrainParams),
    Quality(QualityParams),
    Decode(DecodeParams),
}

impl super::Params {
    pub fn typed(&self) -> Typed {
        use super::Params as P;
        match self.clone() {
            P::Gemm {
                m,
                n,
                k,
                dtype,
                variant,
            } => Typed::Gemm(GemmParams {
                m,
                n,
                k,
                dtype,
                variant,
            }),
            P::Fault { fault } => Typed::Fault(fault),
            P::Stream { elems } => Typed::Stream(elems),
            P::Read { bytes } => Typed::Read(bytes),
            P::Attention { seq } => Typed::Attention(seq),
            P::Train {
                model,
                dtype,
                batch,
                seq,
            } => Typed::Train(TrainParams {
                model,
                dtype,
                batch,
                seq,
            }),
            P::TrainQuality {
                model,
                dtype,
                steps,
                batch,
                seq,
            } => Typed::Quality(QualityParams {
                model,
                dtype,
                steps,
                batch,
                seq,
            }),
            P::Decode {
                model,
                format,
                prompt,
                gen_tokens,
                batch,
                depth,
            } => Typed::Decode(DecodeParams {
                model,
                format,
                prompt,
                gen_tokens,
                batch,
                depth,
            }),
        }
    }
}
