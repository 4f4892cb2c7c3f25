//! Micro kernels: GEMM first; fault workloads that test the harness.

pub mod attention;
pub mod fault;
pub mod gemm;
pub mod read;
pub mod stream;
#[cfg(feature = "wgpu")]
pub mod wgpu;
