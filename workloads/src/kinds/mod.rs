//! The workload kinds, each with its backend implementations side by side:
//! the candle one (cpu, cuda, metal) in the kind's own file, our wgpu
//! engine's in its `wgpu` module. The registry, above, picks one per spec.

pub mod decode;
pub mod engine_inputs;
pub mod kernels;
pub mod quality;
pub mod train;
