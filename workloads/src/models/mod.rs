//! The model families, written once: configuration and shapes, the
//! differentiable ops, and the transformer itself.

pub mod bgemm;
pub mod cache;
pub mod config;
pub mod fgemm;
pub mod fused;
pub mod gemm;
pub mod gguf;
pub mod matvec;
pub mod model;
pub mod ops;
pub mod params;
pub mod q4;
pub mod q8;
mod qact;
mod qgemm;
pub mod zeroed;

pub use config::{Family, ModelConfig, shape, shapes};
pub use model::{Cache, Model, WeightFormat};
pub use params::{Params, init};
