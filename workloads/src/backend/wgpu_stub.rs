//! Stand-in for the wgpu engine when capbench is built without `--features wgpu`:
//! every entry point answers with the rebuild hint, never a pretend result.

use super::{BackendStatus, WgpuSelector};
use crate::error::{Result, WorkloadError};

fn not_compiled() -> WorkloadError {
    WorkloadError::NotCompiled {
        backend: "wgpu".into(),
        feature: "wgpu".into(),
    }
}

pub fn probe() -> BackendStatus {
    BackendStatus {
        backend: "wgpu".into(),
        compiled_in: false,
        usable: false,
        note: not_compiled().to_string(),
        devices: vec![],
    }
}

pub fn check_usable(_selector: WgpuSelector) -> Result<super::DeviceRecord> {
    Err(not_compiled())
}
