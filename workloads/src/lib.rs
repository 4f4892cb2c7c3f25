//! capbench's fixed, versioned workloads and the backends they run on.
//! The harness only sees `spec`, `backend` and the `PreparedWorkload` trait.

pub mod backend;
pub mod data;
pub mod decode;
pub mod error;
pub mod grad_check;
pub mod kernels;
pub mod memory_need;
pub mod models;
pub mod quality;
pub mod spec;
pub mod train;
pub mod verify;
pub mod workload;

pub use backend::{Backend, BackendStatus, WgpuApi, WgpuSelector};
pub use error::WorkloadError;
pub use spec::{DType, WorkloadSpec};
pub use verify::Verification;
pub use workload::{
    IterReport, PrepareOptions, PreparedWorkload, WorkPerIter, catalog, prepare, prepare_with,
};
