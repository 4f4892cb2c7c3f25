//! Without the `llamacpp` feature: the backend exists and says how to get it.

use super::{Backend, BackendStatus};
use crate::device::LlamaOffload;
use crate::error::Result;

/// Always the "rebuild with --features llamacpp…" error.
pub fn check_usable(offload: LlamaOffload) -> Result<()> {
    Backend::LlamaCpp(offload).ensure_compiled()
}

pub fn probe() -> BackendStatus {
    let b = Backend::LlamaCpp(LlamaOffload::Cpu);
    BackendStatus {
        backend: b.family().into(),
        compiled_in: false,
        usable: false,
        note: b
            .ensure_compiled()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default(),
        devices: vec![],
    }
}
