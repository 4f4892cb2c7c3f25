//! capbench's fixed, versioned workloads and the backends they run on.
//! The harness only sees `spec`, `backend` and the `PreparedWorkload` trait.

pub mod api;
pub mod backend;
pub mod cost;
pub mod data;
pub mod device;
pub mod error;
pub mod formats;
pub mod kinds;
pub mod models;
pub mod registry;
pub mod spec;
pub mod verify;

pub use api::{IterReport, PrepareOptions, PreparedWorkload, WorkPerIter};
pub use device::{Backend, BackendStatus, LlamaOffload, WgpuApi, WgpuSelector};
pub use error::WorkloadError;
pub use registry::{catalog, prepare, prepare_with};
pub use spec::{DType, WorkloadSpec};
pub use verify::Verification;
